// libFuzzer target: `--set KEY=VALUE` overrides (each line of the input one), applied to a job
// before it is validated, as `cairn job create --set` does.
#include <cstddef>
#include <cstdint>
#include <string>

#include "base/util.h"
#include "spec/diagnostics.h"
#include "spec/job_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string kJob =
      "command: python train.py --lr ${{inputs.lr}}\nenvironment: {image: python}\n"
      "inputs:\n  lr: 0.1\n  data: {type: uri_folder, path: azureml:iris:1}\noutputs:\n  model: "
      "{type: uri_folder}\n"
      "resources: {instance_count: 1}\ntags: {a: b}\n";
  cairn::spec::ParseOptions options;
  options.check_local_paths = false;
  for (const auto& line :
       cairn::Split(std::string(reinterpret_cast<const char*>(data), size), '\n'))
    if (options.overrides.size() < 16) options.overrides.push_back(line);
  cairn::spec::Diagnostics diags;
  (void)cairn::spec::ParseJobText(kJob, "job.yml", "/nonexistent", options, diags);
  return 0;
}
