// The pipeline half of the job parser: steps made of components, bindings resolved or refused at
// their place, the graph checked and ordered.
#include <gtest/gtest.h>

#include "spec/job_spec.h"

namespace cairn::spec {
namespace {

std::optional<JobSpec> Parse(const std::string& yaml, Diagnostics& d, ParseOptions opt = {}) {
  opt.check_local_paths = false;
  return ParseJobText(yaml, "p.yml", "/base", opt, d);
}

const char kEnv[] = "environment: {image: python}";

TEST(PipelineParser, OrdersStepsAfterWhatTheyReadAndRecordsTheBindings) {
  Diagnostics d;
  auto s = Parse(std::string(R"(type: pipeline
inputs:
  n: 3
  data: {type: uri_folder, path: ./data}
settings: {default_compute: azureml:cpu, force_rerun: true}
jobs:
  last:
    command: echo ${{inputs.m}} ${{inputs.n}}
    )") + kEnv + R"(
    inputs: {m: "${{parent.jobs.first.outputs.o}}", n: "${{parent.inputs.n}}"}
  first:
    command: ls ${{inputs.d}} > ${{outputs.o}}/x
    )" + kEnv + R"(
    inputs: {d: "${{parent.inputs.data}}"}
    outputs: {o: }
    retry_settings: {max_retries: 2, timeout: 60}
)",
                 d);
  ASSERT_TRUE(s) << d.ToString();
  EXPECT_EQ(s->type, "pipeline");
  EXPECT_EQ(s->compute, "cpu");
  const auto& steps = s->pipeline["steps"];
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[0]["name"], "first");  // read from first, so it comes first
  EXPECT_EQ(steps[1]["after"], nlohmann::json::array({"first"}));
  EXPECT_EQ(steps[1]["bindings"]["m"]["step"], "first");
  EXPECT_EQ(steps[1]["bindings"]["m"]["output"], "o");
  // The pipeline's literal is the step's; its data input is the pipeline's path, made absolute.
  EXPECT_EQ(steps[1]["spec"]["inputs"]["n"]["value"], "3");
  EXPECT_EQ(steps[0]["spec"]["inputs"]["d"]["path"], "/base/data");
  EXPECT_EQ(steps[0]["spec"]["compute"], "cpu");  // the default compute
  EXPECT_EQ(steps[0]["retry"]["max_retries"], 2);
  EXPECT_EQ(s->pipeline["settings"]["force_rerun"], true);
}

TEST(PipelineParser, ReportsEveryBindingErrorAndTheCycleAtTheirPlaces) {
  Diagnostics d;
  EXPECT_FALSE(Parse(std::string(R"(type: pipeline
jobs:
  a:
    command: echo ${{inputs.x}}
    )") + kEnv + R"(
    inputs: {x: "${{parent.jobs.b.outputs.o}}"}
    outputs: {o: }
  b:
    command: echo ${{inputs.y}}
    )" + kEnv + R"(
    inputs: {y: "${{parent.jobs.a.outputs.o}}"}
    outputs: {o: }
  c:
    command: echo ${{inputs.z}} ${{inputs.w}}
    )" + kEnv + R"(
    inputs: {z: "${{parent.jobs.nope.outputs.o}}", w: "${{parent.jobs.a.outputs.oo}}"}
)",
                     d));
  std::string all = d.ToString();
  EXPECT_NE(all.find("p.yml:11:17: error: jobs.b.inputs.y: the steps form a cycle: a -> b -> a"),
            std::string::npos)
      << all;
  EXPECT_NE(
      all.find(
          "jobs.c.inputs.z: ${{parent.jobs.nope.outputs.o}} names no step (the steps: a, b, c)"),
      std::string::npos)
      << all;
  EXPECT_NE(all.find("jobs.c.inputs.w: ${{parent.jobs.a.outputs.oo}}: step 'a' has no output 'oo' "
                     "(did you mean 'o'?)"),
            std::string::npos)
      << all;
  EXPECT_EQ(all.find("names no input"), std::string::npos)
      << all;  // a refused binding is one error, not two
}

TEST(PipelineParser, ReadsTheSecondPreviewsBindings) {
  Diagnostics d;
  auto s = Parse(R"(type: pipeline
compute: azureml:cpu
settings:
  environment: {image: python:3.9}
inputs: {greeting: hi}
jobs:
  A:
    command: echo ${{inputs.g}} > ${{outputs.o}}/x
    inputs: {g: "${{inputs.greeting}}"}
    outputs: {o: }
  B:
    command: cat ${{inputs.i}}/x
    inputs: {i: "${{jobs.A.outputs.o}}"}
)",
                 d);
  ASSERT_TRUE(s) << d.ToString();
  EXPECT_EQ(s->generation, "preview 2");
  EXPECT_EQ(s->pipeline["steps"][1]["bindings"]["i"]["step"], "A");
  EXPECT_EQ(s->pipeline["steps"][0]["spec"]["environment"]["image"], "python:3.9");
  EXPECT_EQ(s->pipeline["steps"][0]["spec"]["compute"], "cpu");
}

TEST(PipelineParser, ARegisteredComponentSuppliesCodeDefaultsAndTypes) {
  ParseOptions opt;
  std::vector<std::string> asked;
  opt.resolve_component = [&](const std::string& name,
                              const std::string& version) -> Result<ComponentSource> {
    asked.push_back(name + "@" + version);
    return ComponentSource{R"(name: train
inputs:
  data: {type: uri_folder}
  epochs: {type: integer, default: 3}
  note: {type: string, optional: true}
outputs:
  model: {type: uri_folder}
code: ./src
environment: {image: python}
command: train ${{inputs.data}} ${{inputs.epochs}} $[[--note ${{inputs.note}}]] ${{outputs.model}}
)",
                           "azureml:train:4", std::string(64, 'a')};
  };
  Diagnostics d;
  auto s = Parse(R"(type: pipeline
inputs: {n: 5}
jobs:
  t:
    component: azureml:train@latest
    inputs: {data: {type: uri_folder, path: ./d}}
  u:
    component: azureml:train:4
    inputs: {data: "${{parent.jobs.t.outputs.model}}", epochs: "${{parent.inputs.n}}"}
)",
                 d, opt);
  ASSERT_TRUE(s) << d.ToString();
  EXPECT_EQ(asked, (std::vector<std::string>{"train@", "train@4"}));
  const auto& t = s->pipeline["steps"][0];
  EXPECT_EQ(t["component"], "train:4");
  EXPECT_EQ(t["spec"]["code_snapshot"], std::string(64, 'a'));
  EXPECT_EQ(t["spec"]["inputs"]["epochs"]["value"], "3");
  EXPECT_EQ(t["spec"]["inputs"]["note"]["optional"], true);
  EXPECT_EQ(s->pipeline["steps"][1]["spec"]["inputs"]["epochs"]["value"], "5");

  Diagnostics bad;
  EXPECT_FALSE(Parse(R"(type: pipeline
inputs: {n: 5}
jobs:
  t:
    component: azureml:train:4
    inputs: {data: "${{parent.inputs.n}}", epoch: 2}
)",
                     bad, opt));
  std::string all = bad.ToString();
  EXPECT_NE(all.find("jobs.t.inputs.data: type mismatch: the pipeline's input 'n' is a value but "
                     "the component's input is data (uri_folder)"),
            std::string::npos)
      << all;
  EXPECT_NE(
      all.find("jobs.t.inputs.epoch: the component has no input 'epoch' (did you mean 'epochs'?)"),
      std::string::npos)
      << all;
}

TEST(PipelineParser, RefusesARegisteredComponentWithoutAWorkspaceAndAPartialBinding) {
  Diagnostics d;
  EXPECT_FALSE(Parse(std::string(R"(type: pipeline
jobs:
  a: {component: "azureml:x:1"}
  b:
    command: echo ${{inputs.i}}
    )") + kEnv + R"(
    inputs: {i: "pre-${{parent.jobs.a.outputs.o}}"}
)",
                     d));
  std::string all = d.ToString();
  EXPECT_NE(all.find("p.yml:3:18: error: jobs.a.component: 'azureml:x:1' is a registered "
                     "component; validating it needs the workspace"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("jobs.b.inputs.i: a binding must be the whole value"), std::string::npos)
      << all;
}

TEST(ComponentParser, ReadsAComponentFileAsTheJobItStandsFor) {
  Diagnostics d;
  ParseOptions opt;
  opt.check_local_paths = false;
  auto c = ParseComponentText(R"(name: prep
version: "2"
is_deterministic: false
inputs:
  raw: {type: uri_file}
  k: {type: integer, default: 1}
outputs:
  out: {type: uri_folder}
code: ./src
environment: {image: python}
command: prep ${{inputs.raw}} ${{inputs.k}} ${{outputs.out}}
)",
                              "prep.yml", "/c", opt, d);
  ASSERT_TRUE(c) << d.ToString();
  EXPECT_EQ(c->name, "prep");
  EXPECT_EQ(c->version, "2");
  EXPECT_FALSE(c->is_deterministic);
  EXPECT_EQ(c->code, "/c/src");
  EXPECT_EQ(c->inputs["k"]["default"], 1);
  Diagnostics bad;
  EXPECT_FALSE(
      ParseComponentText("inputs: {raw: {type: uri_file}}\nenvironment: {image: python}\ncommand: "
                         "cat ${{inputs.nope}}\n",
                         "c.yml", "/c", opt, bad));
  EXPECT_NE(bad.ToString().find("missing required key 'name'"), std::string::npos)
      << bad.ToString();
  EXPECT_NE(bad.ToString().find("${{inputs.nope}} names no input"), std::string::npos)
      << bad.ToString();
}

}  // namespace
}  // namespace cairn::spec
