// libFuzzer target: a job file as a user (or an attacker) writes it, through the whole parser:
// YAML, the three syntax generations, placeholders, validation, pipelines (steps, bindings, the
// graph; a registered component stands in for the workspace's) and component files. Diagnostics or
// a spec, never a crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "spec/diagnostics.h"
#include "spec/job_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  cairn::spec::ParseOptions options;
  options.check_local_paths = false;
  options.resolve_component =
      [](const std::string& name,
         const std::string&) -> cairn::Result<cairn::spec::ComponentSource> {
    if (name != "train") return cairn::NotFound("no component " + name);
    return cairn::spec::ComponentSource{
        "name: train\ninputs: {data: {type: uri_folder}, n: {type: integer, default: 3}}\noutputs: "
        "{model: }\n"
        "environment: {image: python}\ncommand: train ${{inputs.data}} ${{inputs.n}} "
        "${{outputs.model}}\n",
        "azureml:train:1", ""};
  };
  cairn::spec::Diagnostics diags;
  (void)cairn::spec::ParseJobText(text, "job.yml", "/nonexistent", options, diags);
  cairn::spec::Diagnostics component_diags;
  (void)cairn::spec::ParseComponentText(text, "component.yml", "/nonexistent", options,
                                        component_diags);
  return 0;
}
