// Appending JSON text by hand, for answers of megabytes (a search over thousands of runs, a metric
// history) where building an nlohmann::json tree first costs more than the rest of the request.
#pragma once

#include <string>
#include <string_view>

namespace cairn {

// `s` as a JSON string literal, quotes included; bytes that are not UTF-8 become U+FFFD, as
// nlohmann's dump(..., error_handler_t::replace) writes them, so both paths give the same text.
void AppendJsonString(std::string& out, std::string_view s);
// The shortest text that reads back as `v` ("1.0", not "1"); `v` must be finite.
void AppendJsonDouble(std::string& out, double v);
void AppendJsonInt(std::string& out, long long v);

}  // namespace cairn
