// Bounded parsing of JSON from outside (request bodies, a job's files): every parse goes through
// here. nlohmann::json parses without recursion, but printing, comparing and copying a value
// recurse, so a 100,000-deep array parsed as it is would crash the server the first time it is
// used. The text is first scanned for its nesting depth (outside strings), and refused past the
// limit, with the size bounded too. nlohmann's lexer refuses ill-formed UTF-8. Thread-safe (pure
// functions).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace cairn {

struct JsonLimits {
  size_t max_depth = 64;
  size_t max_bytes = size_t{64} << 20;
};

// The deepest nesting of `text`'s arrays and objects (strings skipped), stopping once past
// `stop_at`.
size_t JsonDepth(std::string_view text, size_t stop_at);

// Parses `text` into `out`; on failure says why in `error` ("nesting deeper than 64", "ill-formed
// UTF-8
// ..." as nlohmann words it) and leaves `out` discarded.
bool ParseJsonBounded(std::string_view text, nlohmann::json* out, std::string* error,
                      JsonLimits limits = {});

// As ParseJsonBounded, for callers that only tell valid from invalid: a discarded value on failure
// (what json::parse(text, nullptr, false) returns).
nlohmann::json ParseJsonOrDiscarded(std::string_view text, JsonLimits limits = {});

}  // namespace cairn
