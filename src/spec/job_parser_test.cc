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
  EXPECT_EQ(d.ToString(),
            "job.yml:3:1: error: unknown key 'enviroment_variables' (did you mean "
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
)",
                 d);
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

TEST(JobSpecParser, AnOmittedProcessCountStaysOmitted) {
  // Left for the scheduler: one process per GPU of a GPU size, else one.
  Diagnostics d;
  auto s = Parse("command: echo\nenvironment: {image: python}\ndistribution: {type: pytorch}\n", d);
  ASSERT_TRUE(s) << d.ToString();
  EXPECT_EQ(s->distribution, (nlohmann::json{{"type", "pytorch"}}));
  auto given = Parse(
      "command: echo\nenvironment: {image: python}\ndistribution: {type: mpi, "
      "process_count_per_instance: 3}\n",
      d);
  ASSERT_TRUE(given);
  EXPECT_EQ(given->distribution["process_count_per_instance"], 3);
}

TEST(JobSpecParser, BoundsEveryCountThatNamesProcessesToStartAndTheTags) {
  Diagnostics d;
  EXPECT_FALSE(
      Parse("command: echo\nenvironment: {image: python}\n"
            "distribution: {type: mpi, process_count_per_instance: 100000000}\n",
            d));
  EXPECT_EQ(d.ToString(),
            "job.yml:3:55: error: distribution.process_count_per_instance: at most 1024, got "
            "100000000\n");
  Diagnostics d2;
  EXPECT_FALSE(Parse(
      "command: echo\nenvironment: {image: python}\nresources: {instance_count: 5000}\n", d2));
  EXPECT_EQ(d2.ToString(),
            "job.yml:3:29: error: resources.instance_count: at most 1024, got 5000\n");
  std::string many = "command: echo\nenvironment: {image: python}\ntags:\n";
  for (int i = 0; i < 257; ++i) many += "  t" + std::to_string(i) + ": v\n";
  Diagnostics d3;
  EXPECT_FALSE(Parse(many, d3));
  EXPECT_EQ(d3.ToString(), "job.yml:4:3: error: tags: at most 256 tags, got 257\n");
}

TEST(JobSpecFromJson, BoundsWhatAClientSendsAsTheParserBoundsAFile) {
  nlohmann::json j = {
      {"command", "echo"},
      {"distribution", {{"type", "mpi"}, {"process_count_per_instance", 100000000}}}};
  auto s = JobSpecFromJson(j);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message(), "distribution.process_count_per_instance: at most 1024");
  nlohmann::json many = {{"command", "echo"}, {"tags", nlohmann::json::object()}};
  for (int i = 0; i < 257; ++i) many["tags"]["t" + std::to_string(i)] = "v";
  auto t = JobSpecFromJson(many);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(), "tags and properties: at most 256 each");
  EXPECT_EQ(JobSpecFromJson({{"command", "echo"}, {"resources", {{"instance_count", 5000}}}})
                .status()
                .message(),
            "resources.instance_count: at most 1024");
  EXPECT_TRUE(
      JobSpecFromJson({{"command", "echo"},
                       {"distribution", {{"type", "pytorch"}, {"process_count_per_instance", 8}}}})
          .ok());
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
)",
                 d);
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
  auto s = Parse(
      "name: file_name\ncommand: echo ${{inputs.epochs}}\ninputs: {epochs: 1}\nenvironment: "
      "{image: p}\n",
      d, opt);
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
  EXPECT_EQ(d.ToString(),
            "job.yml:2:1: error: duplicate key 'command' (first defined on line 1)\n");
  Diagnostics d2;
  EXPECT_TRUE(
      Parse("command: a\nenvironment: {image: p}\nenvironment: {image: p}\n", d2).has_value() ==
      false);
  Diagnostics d3;
  EXPECT_TRUE(Parse("command: a\ndisplay_name: x\ndisplay_name: x\nenvironment: {image: p}\n", d3));
  EXPECT_EQ(d3.ToString(),
            "job.yml:3:1: warning: duplicate key 'display_name' repeats the value of line 2\n");
}

TEST(JobSpecParser, OptionalInputsNeedAnOptionalFragment) {
  Diagnostics d;
  EXPECT_TRUE(Parse(
      "command: run $[[--x ${{inputs.x}}]]\ninputs:\n  x:\n    type: uri_file\n    optional: true\n"
      "environment: {image: p}\n",
      d))
      << d.ToString();
  Diagnostics d2;
  EXPECT_FALSE(Parse(
      "command: run --x ${{inputs.x}}\ninputs:\n  x:\n    type: uri_file\n    optional: true\n"
      "environment: {image: p}\n",
      d2));
  EXPECT_EQ(d2.ToString(),
            "job.yml:1:10: error: command: ${{inputs.x}} has no value; wrap the optional part in "
            "$[[ ... ]] so it is dropped when the input is absent\n");
}

TEST(JobSpecParser, ReportsMissingRequiredKeysAndBadTypes) {
  Diagnostics d;
  EXPECT_FALSE(
      Parse("environment: {image: p, build: {path: x}}\nlimits: {timeout: -5}\ntags: [a]\n", d));
  EXPECT_EQ(d.ToString(),
            "job.yml:1:1: error: missing required key 'command'\n"
            "job.yml:1:32: error: environment: give either 'image' or 'build', not both\n"
            "job.yml:2:19: error: limits.timeout: expected a positive integer, got \"-5\"\n"
            "job.yml:3:7: error: tags: expected a mapping of names to strings, got a list\n");
}

TEST(JobSpecParser, QueueSettingsAreAzureMlsValuesInAnyCase) {
  Diagnostics d;
  auto s = Parse(
      "command: echo\nenvironment: {image: p}\nqueue_settings: {priority: High, job_tier: spot}\n",
      d);
  ASSERT_TRUE(s) << d.ToString();
  EXPECT_EQ(s->queue_settings, nlohmann::json({{"priority", "high"}, {"job_tier", "spot"}}));
  Diagnostics bad;
  EXPECT_FALSE(
      Parse("command: echo\nenvironment: {image: p}\nqueue_settings:\n  priority: urgent\n"
            "  job_tier: [spot]\n  tier: spot\n",
            bad));
  EXPECT_EQ(bad.ToString(),
            "job.yml:4:13: error: queue_settings.priority: expected one of low, medium, high, got "
            "'urgent'\n"
            "job.yml:5:13: error: queue_settings.job_tier: expected one of spot, basic, standard, "
            "premium, got a list\n"
            "job.yml:6:3: error: unknown key 'queue_settings.tier'\n");
}

TEST(JobSpecFromJson, QueueSettingsFromAClientAreCheckedAsInAFile) {
  Diagnostics d;
  auto s = Parse("command: echo\nenvironment: {image: p}\nqueue_settings: {priority: low}\n", d);
  ASSERT_TRUE(s) << d.ToString();
  nlohmann::json j = ToJson(*s);
  EXPECT_TRUE(JobSpecFromJson(j).ok());
  j["queue_settings"] = {{"priority", "urgent"}};
  EXPECT_EQ(JobSpecFromJson(j).status().message(),
            "queue_settings.priority: expected one of low, medium, high");
  j["queue_settings"] = {{"job_tier", 3}};
  EXPECT_FALSE(JobSpecFromJson(j).ok());
  j["queue_settings"] = "high";
  EXPECT_FALSE(JobSpecFromJson(j).ok());
}

TEST(JobSpecParser, JsonRoundTripKeepsTheModel) {
  Diagnostics d;
  auto s = Parse(
      "command: echo ${{inputs.a}} > ${{outputs.o}}/x\ninputs: {a: hi}\noutputs: {o: {type: "
      "uri_folder}}\n"
      "environment: {image: p}\nlimits: {timeout: 9}\n",
      d);
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
  EXPECT_EQ(d.ToString(),
            "bomb.yml: error: the document expands to more than 200000 nodes (an alias bomb?); "
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

namespace cairn::spec {
namespace {

ParseOptions NoPathChecks() {
  ParseOptions o;
  o.check_local_paths = false;
  return o;
}

TEST(SweepParser, ReadsTheGaShape) {
  Diagnostics d;
  auto s = ParseJobText(R"(type: sweep
trial:
  code: src
  command: python main.py --lr ${{search_space.lr}} --boosting ${{search_space.boosting}} --csv ${{inputs.csv}}
  environment: {image: python}
inputs:
  csv: {type: uri_file, path: https://example.com/iris.csv}
sampling_algorithm: {type: random, seed: 7, rule: sobol}
search_space:
  lr: {type: uniform, min_value: 0.01, max_value: 0.9}
  boosting: {type: choice, values: [gbdt, dart]}
objective: {goal: Minimize, primary_metric: test-multi_logloss}
limits: {max_total_trials: 20, max_concurrent_trials: 10, timeout: 7200, trial_timeout: 600}
early_termination: {type: bandit, slack_factor: 0.1, evaluation_interval: 2, delay_evaluation: 4}
)",
                        "job.yml", "/base", NoPathChecks(), d);
  ASSERT_TRUE(s) << d.ToString();
  EXPECT_EQ(s->type, "sweep");
  EXPECT_EQ(s->generation, "GA");
  EXPECT_EQ(s->code, "/base/src");
  EXPECT_EQ(s->timeout_seconds, 600);  // the trial's
  EXPECT_EQ(s->sweep["algorithm"],
            nlohmann::json::parse(R"({"type": "random", "seed": 7, "rule": "sobol"})"));
  EXPECT_EQ(s->sweep["objective"]["goal"], "minimize");
  EXPECT_EQ(s->sweep["limits"]["max_concurrent_trials"], 10);
  EXPECT_EQ(s->sweep["early_termination"]["slack_factor"], 0.1);
  EXPECT_EQ(s->sweep["search_space"]["boosting"]["values"][1], "dart");
  // The wire form keeps it.
  auto back = JobSpecFromJson(ToJson(*s));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->sweep, s->sweep);
}

TEST(SweepParser, ReadsPreviewOneWithItsTopLevelLimits) {
  Diagnostics d;
  auto s = ParseJobText(R"(type: sweep_job
algorithm: grid
trial:
  code: {local_path: src}
  command: python main.py --boosting {search_space.boosting} --csv {inputs.iris}
  inputs:
    iris: {data: {path: https://example.com/iris.csv}, mode: mount}
  environment: {docker: {image: python}}
  compute: {target: local}
search_space:
  boosting: {type: choice, values: [gbdt, dart, goss]}
objective: {primary_metric: loss, goal: minimize}
max_concurrent_trials: 2
timeout_minutes: 120
)",
                        "job.yml", "/base", NoPathChecks(), d);
  ASSERT_TRUE(s) << d.ToString();
  EXPECT_EQ(s->generation, "preview 1");
  EXPECT_EQ(s->command,
            "python main.py --boosting ${{search_space.boosting}} --csv ${{inputs.iris}}");
  EXPECT_EQ(s->sweep["limits"]["timeout"], 7200);
  EXPECT_EQ(s->sweep["limits"]["max_total_trials"], 3);  // a grid's size
  EXPECT_EQ(s->sweep["limits"]["max_concurrent_trials"], 2);
}

TEST(SweepParser, RefusesInvalidCombinationsAtTheirPlace) {
  auto errors = [](const std::string& text) {
    Diagnostics d;
    EXPECT_FALSE(ParseJobText(text, "job.yml", "/base", NoPathChecks(), d));
    return d.ToString();
  };
  const std::string head =
      "type: sweep\ntrial:\n  command: python t.py --x ${{search_space.x}}\n  environment: {image: "
      "python}\n"
      "objective: {primary_metric: m, goal: maximize}\n";
  EXPECT_EQ(errors(head + "sampling_algorithm: grid\nsearch_space:\n  x: {type: uniform, "
                          "min_value: 0, max_value: 1}\n"),
            "job.yml:8:6: error: search_space.x: grid sampling takes only choice (with plain "
            "values), not uniform "
            "(sampling_algorithm: grid)\n");
  EXPECT_EQ(
      errors(head +
             "sampling_algorithm: bayesian\nsearch_space:\n  x: {type: normal, mu: 0, sigma: 1}\n"),
      "job.yml:8:6: error: search_space.x: bayesian sampling takes only choice, uniform and "
      "quniform, not normal "
      "(sampling_algorithm: bayesian)\n");
  EXPECT_EQ(errors(head + "sampling_algorithm: bayesian\nsearch_space:\n  x: {type: uniform, "
                          "min_value: 0, max_value: 1}\n"
                          "early_termination: {type: median_stopping}\n"),
            "job.yml:9:20: error: early_termination: bayesian sampling does not support early "
            "termination; remove the "
            "policy or use random sampling\n");
  EXPECT_EQ(errors(head + "search_space:\n  x: {type: uniform, min_value: 2, max_value: 1}\n"),
            "job.yml:7:47: error: search_space.x.max_value: must not be less than min_value (2)\n");
  EXPECT_EQ(errors(head + "search_space:\n  y: {type: uniform, min_value: 0, max_value: 1}\n"),
            "job.yml:3:12: error: command: ${{search_space.x}} names no hyperparameter (did you "
            "mean 'search_space.y'?)\n");
  EXPECT_EQ(errors(head + "search_space:\n  abc: {type: uniform, min_value: 0, max_value: 1}\n"),
            "job.yml:3:12: error: command: ${{search_space.x}} names no hyperparameter "
            "(search_space has: abc)\n");
  EXPECT_EQ(
      errors(
          head +
          "search_space:\n  x: {type: choice, values: [1]}\nearly_termination: {type: bandit}\n"),
      "job.yml:8:20: error: early_termination: a bandit policy takes exactly one of slack_factor "
      "and slack_amount\n");
  EXPECT_EQ(
      errors(head +
             "search_space:\n  x: {type: choice, values: [1]}\nlimits: {max_total_trials: 5000}\n"),
      "job.yml:8:28: error: limits.max_total_trials: at most 1000, got 5000\n");
}

}  // namespace
}  // namespace cairn::spec

namespace cairn::spec {
namespace {

// Found by the job_yaml fuzz target: a byte that is not UTF-8 in a search space's value crashed the
// CLI (nlohmann::json refuses to print it).
TEST(JobParser, RefusesAFileThatIsNotUtf8WhereItStopsBeing) {
  Diagnostics d;
  ParseOptions opt;
  opt.check_local_paths = false;
  std::string yaml =
      "type: sweep\ntrial:\n  command: echo ${{search_space.x}}\n  environment: {image: python}\n"
      "sampling_algorithm: random\nsearch_space:\n  x: {type: uniform, min_value: \xc3\xa9\xff, "
      "max_value: 2}\n"
      "objective: {goal: maximize, primary_metric: a}\n";
  EXPECT_FALSE(ParseJobText(yaml, "job.yml", "/base", opt, d));
  EXPECT_EQ(d.ToString(), "job.yml:7:34: error: the file is not valid UTF-8 here\n");
}

}  // namespace
}  // namespace cairn::spec
