#include "base/json_limits.h"

namespace cairn {

size_t JsonDepth(std::string_view text, size_t stop_at) {
  size_t depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > deepest) deepest = depth;
        if (deepest > stop_at) return deepest;
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;
        break;
      default:
        break;
    }
  }
  return deepest;
}

bool ParseJsonBounded(std::string_view text, nlohmann::json* out, std::string* error,
                      JsonLimits limits) {
  *out = nlohmann::json(nlohmann::json::value_t::discarded);
  if (text.size() > limits.max_bytes) {
    *error = "JSON text of " + std::to_string(text.size()) + " bytes is over the limit of " +
             std::to_string(limits.max_bytes);
    return false;
  }
  if (JsonDepth(text, limits.max_depth) > limits.max_depth) {
    *error = "JSON nested deeper than " + std::to_string(limits.max_depth) + " levels";
    return false;
  }
  try {
    *out = nlohmann::json::parse(text);
    return true;
  } catch (const nlohmann::json::exception& e) {
    *error = e.what();
    *out = nlohmann::json(nlohmann::json::value_t::discarded);
    return false;
  }
}

nlohmann::json ParseJsonOrDiscarded(std::string_view text, JsonLimits limits) {
  nlohmann::json j;
  std::string error;
  ParseJsonBounded(text, &j, &error, limits);
  return j;
}

}  // namespace cairn
