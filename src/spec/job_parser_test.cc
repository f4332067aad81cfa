#include <gtest/gtest.h>

#include "spec/job_spec.h"
#include "spec/yaml_tree.h"

namespace cairn::spec {
namespace {

std::optional<JobSpec> Parse(const std::string& yaml, Diagnostics& d, ParseOptions opt = {}) {
  opt.check_local_paths = false;
  return ParseJobText(yaml, "job.yml", "/base", opt, d);
}

TEST(JobSpecParser, RejectsUnknownKeyWithSuggestion) {
  Diagnostics d;
  EXPECT_FALSE(Parse("command: echo\nenvironment: {image: python}\nenviroment_variables: {}\n", d));
  EXPECT_EQ(d.ToString(), "job.yml:3:1: error: unknown key 'enviroment_variables' (did you mean "
                          "'environment_variables'?)\n");
}

TEST(JobSpecParser, NormalisesPreviewOne) {
  Diagnostics d;
  auto s = Parse(R"(
code:
  local_path: src
command: python main.py --iris-csv {inputs.iris} --n {inputs.n}
inputs:
  iris:
    data:
      path: https://example.com/iris.csv
    mode: mount
  n: 3
environment:
  docker:
    image: python
compute:
  target: azureml:cpu-cluster
  instance_count: 2
distribution:
  type: pytorch
  process_count: 4
)", d);
  ASSERT_TRUE(s) << d.ToString();
  EXPECT_EQ(s->generation, "preview 1");
  EXPECT_EQ(s->code, "/base/src");
  EXPECT_EQ(s->command, "python main.py --iris-csv ${{inputs.iris}} --n ${{inputs.n}}");
  EXPECT_EQ(s->compute, "cpu-cluster");
  EXPECT_EQ(s->instance_count, 2);
  EXPECT_EQ(s->distribution["process_count_per_instance"], 2);
  EXPECT_EQ(s->inputs["iris"].mode, "ro_mount");
  EXPECT_EQ(s->inputs["iris"].type, "uri_file");
  EXPECT_EQ(s->inputs["iris"].path_kind, PathKind::kHttp);
  EXPECT_TRUE(s->inputs["n"].literal);
  EXPECT_EQ(s->inputs["n"].literal_type, "integer");
  EXPECT_EQ(s->environment.image, "python");
}

TEST(JobSpecParser, NormalisesPreviewTwoInputs) {
  Diagnostics d;
  auto s = Parse(R"(
code: {local_path: src}
command: ls ${{inputs.f}} ${{inputs.d}}
inputs:
  f: {file: https://example.com/a.csv}
  d: {folder: wasbs://c@a.blob.core.windows.net/x, mode: ro_mount}
environment: azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu:3
compute: azureml:cpu-cluster
resources: {instance_count: 1}
)", d);
  ASSERT_TRUE(s) << d.ToString();
  EXPECT_EQ(s->generation, "preview 2");
  EXPECT_EQ(s->inputs["f"].type, "uri_file");
  EXPECT_EQ(s->inputs["d"].type, "uri_folder");
  EXPECT_EQ(s->inputs["d"].path_kind, PathKind::kCloud);
  EXPECT_EQ(s->environment.reference, "azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu:3");
}

TEST(JobSpecParser, SetOverridesApplyBeforeValidationAndNameWins) {
  Diagnostics d;
  ParseOptions opt;
  opt.overrides = {"inputs.epochs=3", "experiment_name=x", "tags.hello=updated tag"};
  opt.name = "my_run";
  auto s = Parse("name: file_name\ncommand: echo ${{inputs.epochs}}\ninputs: {epochs: 1}\nenvironment: {image: p}\n", d, opt);
  ASSERT_TRUE(s) << d.ToString();
  EXPECT_EQ(s->name, "my_run");
  EXPECT_EQ(s->inputs["epochs"].value, "3");
  EXPECT_EQ(s->inputs["epochs"].literal_type, "integer");
  EXPECT_EQ(s->experiment_name, "x");
  EXPECT_EQ(s->tags["hello"], "updated tag");
}

TEST(JobSpecParser, QuotedNumbersStayStrings) {
  Diagnostics d;
  auto s = Parse("command: echo ${{inputs.v}}\ninputs: {v: \"5\"}\nenvironment: {image: p}\n", d);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->inputs["v"].literal_type, "string");
}

TEST(JobSpecParser, DuplicateKeysWithDifferentValuesAreErrors) {
  Diagnostics d;
  EXPECT_FALSE(Parse("command: a\ncommand: b\nenvironment: {image: p}\n", d));
  EXPECT_EQ(d.ToString(), "job.yml:2:1: error: duplicate key 'command' (first defined on line 1)\n");
  Diagnostics d2;
  EXPECT_TRUE(Parse("command: a\nenvironment: {image: p}\nenvironment: {image: p}\n", d2).has_value() == false);
  Diagnostics d3;
  EXPECT_TRUE(Parse("command: a\ndisplay_name: x\ndisplay_name: x\nenvironment: {image: p}\n", d3));
  EXPECT_EQ(d3.ToString(), "job.yml:3:1: warning: duplicate key 'display_name' repeats the value of line 2\n");
}

TEST(JobSpecParser, OptionalInputsNeedAnOptionalFragment) {
  Diagnostics d;
  EXPECT_TRUE(Parse("command: run $[[--x ${{inputs.x}}]]\ninputs:\n  x:\n    type: uri_file\n    optional: true\n"
                    "environment: {image: p}\n", d)) << d.ToString();
  Diagnostics d2;
  EXPECT_FALSE(Parse("command: run --x ${{inputs.x}}\ninputs:\n  x:\n    type: uri_file\n    optional: true\n"
                     "environment: {image: p}\n", d2));
  EXPECT_EQ(d2.ToString(), "job.yml:1:10: error: command: ${{inputs.x}} has no value; wrap the optional part in "
                           "$[[ ... ]] so it is dropped when the input is absent\n");
}

TEST(JobSpecParser, ReportsMissingRequiredKeysAndBadTypes) {
  Diagnostics d;
  EXPECT_FALSE(Parse("environment: {image: p, build: {path: x}}\nlimits: {timeout: -5}\ntags: [a]\n", d));
  EXPECT_EQ(d.ToString(),
            "job.yml:1:1: error: missing required key 'command'\n"
            "job.yml:1:32: error: environment: give either 'image' or 'build', not both\n"
            "job.yml:2:19: error: limits.timeout: expected a positive integer, got \"-5\"\n"
            "job.yml:3:7: error: tags: expected a mapping of names to strings, got a list\n");
}

TEST(JobSpecParser, JsonRoundTripKeepsTheModel) {
  Diagnostics d;
  auto s = Parse("command: echo ${{inputs.a}} > ${{outputs.o}}/x\ninputs: {a: hi}\noutputs: {o: {type: uri_folder}}\n"
                 "environment: {image: p}\nlimits: {timeout: 9}\n", d);
  ASSERT_TRUE(s);
  auto back = JobSpecFromJson(ToJson(*s));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(ToJson(*back), ToJson(*s));
  EXPECT_EQ(back->timeout_seconds, 9);
}

TEST(YamlTree, RefusesAliasBombs) {
  // Each level refers to the previous one ten times: 10^8 nodes if expanded.
  std::string bomb = "l0: &l0 [x,x,x,x,x,x,x,x,x,x]\n";
  for (int i = 1; i < 8; ++i) {
    std::string prev = "*l" + std::to_string(i - 1);
    bomb += "l" + std::to_string(i) + ": &l" + std::to_string(i) + " [";
    for (int k = 0; k < 10; ++k) bomb += (k ? "," : "") + prev;
    bomb += "]\n";
  }
  Diagnostics d;
  EXPECT_FALSE(ParseYaml(bomb, "bomb.yml", d));
  EXPECT_EQ(d.ToString(), "bomb.yml: error: the document expands to more than 200000 nodes (an alias bomb?); "
                          "refusing to read it\n");
}

TEST(YamlTree, OverrideIntoAScalarIsAnError) {
  Diagnostics d;
  auto root = ParseYaml("command: echo\n", "j.yml", d);
  ASSERT_TRUE(root);
  EXPECT_FALSE(ApplyOverride(*root, "command.x=1", d));
  EXPECT_EQ(d.ToString(), "--set: error: 'command.x': 'command' is a string, not a mapping\n");
}

}  // namespace
}  // namespace cairn::spec
