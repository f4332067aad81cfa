// libFuzzer target: what the CLI does with a server's answer (a hostile server's included). The CLI
// reads it with the depth-bounded parser (base/json_limits.h) and prints it in every output format,
// with a query, as `cairn job list -o table --query ...` would: nothing may crash, however deep or
// odd the answer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "base/json_limits.h"
#include "cli/output.h"

using cairn::cli::Column;
using cairn::cli::Format;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  nlohmann::json answer = cairn::ParseJsonOrDiscarded(in);
  if (answer.is_discarded()) return 0;
  const std::vector<Column> columns = {
      {"Name", "name"}, {"Status", "status"}, {"Took", "duration", Column::kDuration}};
  for (Format f : {Format::kJson, Format::kYaml, Format::kTable, Format::kTsv, Format::kNone})
    (void)cairn::cli::Render(answer, f, columns);
  auto q = cairn::cli::ApplyQuery(answer, "[?status=='Completed'].{n: name, t: tags}");
  if (q.ok()) (void)cairn::cli::Render(*q, Format::kTable, {});
  return 0;
}
