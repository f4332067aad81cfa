#include "spec/placeholders.h"

#include <regex>

#include "base/util.h"

namespace cairn::spec {

std::vector<Placeholder> FindPlaceholders(const std::string& text) {
  std::vector<Placeholder> out;
  size_t pos = 0;
  while ((pos = text.find("${{", pos)) != std::string::npos) {
    size_t close = text.find("}}", pos + 3);
    if (close == std::string::npos) break;
    Placeholder p;
    p.begin = pos;
    p.end = close + 2;
    p.expression = Trim(text.substr(pos + 3, close - pos - 3));
    size_t dot = p.expression.find('.');
    p.context = dot == std::string::npos ? p.expression : p.expression.substr(0, dot);
    p.name = dot == std::string::npos ? "" : p.expression.substr(dot + 1);
    out.push_back(p);
    pos = p.end;
  }
  return out;
}

std::string NormalizeLegacyPlaceholders(const std::string& text, int* count) {
  static const std::regex kLegacy(R"(\{\s*((inputs|outputs|search_space)\.[A-Za-z0-9_.\-]+)\s*\})");
  std::string out;
  int n = 0;
  size_t last = 0;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), kLegacy);
       it != std::sregex_iterator(); ++it) {
    size_t at = static_cast<size_t>(it->position());
    // Part of a GA placeholder already: "${{inputs.x}}" contains "{inputs.x}".
    if (at >= 2 && text.compare(at - 2, 2, "${") == 0) continue;
    if (at >= 1 && text[at - 1] == '{') continue;
    out += text.substr(last, at - last);
    out += "${{" + (*it)[1].str() + "}}";
    last = at + static_cast<size_t>(it->length());
    ++n;
  }
  out += text.substr(last);
  if (count) *count = n;
  return out;
}

Result<std::string> Substitute(
    const std::string& text,
    const std::function<std::optional<std::string>(const std::string&, const std::string&)>&
        lookup) {
  // First the optional fragments, each on its own.
  std::string staged;
  size_t pos = 0;
  for (;;) {
    size_t open = text.find("$[[", pos);
    if (open == std::string::npos) {
      staged += text.substr(pos);
      break;
    }
    size_t close = text.find("]]", open + 3);
    if (close == std::string::npos) return InvalidArgument("'$[[' without a closing ']]'");
    staged += text.substr(pos, open - pos);
    std::string inner = text.substr(open + 3, close - open - 3);
    bool keep = true;
    for (const auto& p : FindPlaceholders(inner))
      if (!lookup(p.context, p.name)) keep = false;
    if (keep) staged += inner;
    pos = close + 2;
  }
  std::string out;
  size_t last = 0;
  for (const auto& p : FindPlaceholders(staged)) {
    out += staged.substr(last, p.begin - last);
    auto v = lookup(p.context, p.name);
    if (!v) return InvalidArgument("${{" + p.expression + "}} has no value");
    out += *v;
    last = p.end;
  }
  out += staged.substr(last);
  return out;
}

}  // namespace cairn::spec
