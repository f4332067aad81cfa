// libFuzzer target: a job file as a user (or an attacker) writes it, through the whole parser: YAML,
// the three syntax generations, placeholders, validation. Diagnostics or a spec, never a crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "spec/diagnostics.h"
#include "spec/job_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  cairn::spec::ParseOptions options;
  options.check_local_paths = false;
  cairn::spec::Diagnostics diags;
  (void)cairn::spec::ParseJobText(text, "job.yml", "/nonexistent", options, diags);
  return 0;
}
