#include "cli/output.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

#include "base/jmespath.h"
#include "base/util.h"

namespace cairn::cli {

using json = nlohmann::ordered_json;

Result<Format> ParseFormat(const std::string& s) {
  if (s == "json" || s == "jsonc") return Format::kJson;
  if (s == "yaml" || s == "yamlc") return Format::kYaml;
  if (s == "table") return Format::kTable;
  if (s == "tsv") return Format::kTsv;
  if (s == "none") return Format::kNone;
  return InvalidArgument("--output: '" + s + "' is not one of json, yaml, table, tsv, none");
}

namespace {

// The server's JSON (nlohmann::json) as the ordered kind the query engine and the printers use.
json Ordered(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::object: {
      json o = json::object();
      for (const auto& [k, v] : j.items()) o[k] = Ordered(v);
      return o;
    }
    case nlohmann::json::value_t::array: {
      json a = json::array();
      for (const auto& v : j) a.push_back(Ordered(v));
      return a;
    }
    case nlohmann::json::value_t::string:
      return j.get_ref<const std::string&>();
    case nlohmann::json::value_t::boolean:
      return j.get<bool>();
    case nlohmann::json::value_t::number_integer:
      return j.get<long long>();
    case nlohmann::json::value_t::number_unsigned:
      return j.get<unsigned long long>();
    case nlohmann::json::value_t::number_float:
      return j.get<double>();
    default:
      return nullptr;
  }
}

std::string Scalar(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  if (v.is_boolean()) return v.get<bool>() ? "True" : "False";
  return v.dump();
}

bool NeedsQuotes(const std::string& s) {
  if (s.empty()) return true;
  static const char* kWords[] = {"true", "false", "yes",  "no",   "null", "~",     "on",  "off",
                                 "True", "False", "Null", "NULL", "TRUE", "FALSE", "Yes", "No"};
  for (const char* w : kWords)
    if (s == w) return true;
  if (isspace(static_cast<unsigned char>(s.front())) ||
      isspace(static_cast<unsigned char>(s.back())))
    return true;
  if (strchr("-?:,[]{}#&*!|>'\"%@`", s[0])) return true;
  if (s.find(": ") != std::string::npos || s.find(" #") != std::string::npos) return true;
  char* end;
  strtod(s.c_str(), &end);
  if (*end == '\0') return true;
  for (char c : s)
    if (static_cast<unsigned char>(c) < 0x20) return true;
  return false;
}

void Yaml(const json& v, int indent, std::string& out, bool in_seq) {
  std::string pad(static_cast<size_t>(indent), ' ');
  if (v.is_object()) {
    if (v.empty()) {
      out += "{}\n";
      return;
    }
    bool first = true;
    for (const auto& [k, x] : v.items()) {
      if (!(first && in_seq)) out += pad;
      first = false;
      out += (NeedsQuotes(k) ? json(k).dump() : k) + ":";
      if ((x.is_object() && !x.empty()) || (x.is_array() && !x.empty())) {
        out += "\n";
        Yaml(x, indent + 2, out, false);
      } else {
        out += " ";
        Yaml(x, indent + 2, out, false);
      }
    }
    return;
  }
  if (v.is_array()) {
    if (v.empty()) {
      out += "[]\n";
      return;
    }
    for (const auto& x : v) {
      out += pad + "- ";
      if (x.is_object() && !x.empty())
        Yaml(x, indent + 2, out, true);
      else
        Yaml(x, indent + 2, out, false);
    }
    return;
  }
  if (v.is_string()) {
    std::string s = v.get<std::string>();
    if (s.find('\n') != std::string::npos) {
      out += EndsWith(s, "\n") ? "|\n" : "|-\n";
      for (const auto& line : Split(EndsWith(s, "\n") ? s.substr(0, s.size() - 1) : s, '\n'))
        out += pad + line + "\n";
      return;
    }
    out += (NeedsQuotes(s) ? json(s).dump() : s) + "\n";
    return;
  }
  out += (v.is_null() ? "null" : v.dump()) + "\n";
}

}  // namespace

Result<json> ApplyQuery(const json& value, const std::string& query) {
  if (Trim(query).empty()) return value;
  jmespath::Error e;
  auto expr = jmespath::Expression::Compile(query, &e);
  if (!expr)
    return InvalidArgument("--query: invalid JMESPath expression '" + query + "': " + e.message);
  json out;
  if (!expr->Search(value, &out, &e)) return FailedPrecondition("--query: " + e.message);
  return out;
}

Result<json> ApplyQuery(const nlohmann::json& value, const std::string& query) {
  return ApplyQuery(Ordered(value), query);
}

namespace {
// A table shows times to the second: "2026-12-01T14:01:53.319000+00:00" -> "2026-12-01 14:01:53".
std::string TableScalar(const json& v) {
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    bool iso = s.size() >= 19 && s[4] == '-' && s[7] == '-' && s[10] == 'T' && s[13] == ':' &&
               s[16] == ':' && std::all_of(s.begin(), s.begin() + 4, ::isdigit) &&
               (s.size() == 19 || strchr(".+Z-", s[19]));
    if (iso) return s.substr(0, 10) + " " + s.substr(11, 8);
  }
  return Scalar(v);
}

// 0.4 -> "0.4s", 72 -> "1m 12s", 7300 -> "2h 1m", 90000 -> "1d 1h".
std::string Duration(double seconds) {
  // NaN and negatives show as 0; anything past a million days is clamped so the cast below stays
  // defined (a server's answer is hostile input too).
  if (!(seconds >= 0)) seconds = 0;
  if (seconds > 1e11) seconds = 1e11;
  char buf[64];
  if (seconds < 10 && seconds != std::floor(seconds)) {
    snprintf(buf, sizeof buf, "%.1fs", seconds);
    return buf;
  }
  long long s = static_cast<long long>(seconds + 0.5);
  if (s < 60)
    snprintf(buf, sizeof buf, "%llds", s);
  else if (s < 3600)
    snprintf(buf, sizeof buf, "%lldm %llds", s / 60, s % 60);
  else if (s < 86400)
    snprintf(buf, sizeof buf, "%lldh %lldm", s / 3600, s % 3600 / 60);
  else
    snprintf(buf, sizeof buf, "%lldd %lldh", s / 86400, s % 86400 / 3600);
  return buf;
}

std::string Cell(const jmespath::Expression* e, const json& row,
                 Column::Kind kind = Column::kText) {
  json v;
  if (!e || !e->Search(row, &v, nullptr)) return "";
  if (kind == Column::kDuration && v.is_number()) return Duration(v.get<double>());
  return TableScalar(v);
}
}  // namespace

std::string ToYaml(const json& value) {
  std::string out;
  Yaml(value, 0, out, false);
  return out;
}

std::string ToTsv(const json& value) {
  std::string out;
  auto row = [&](const json& v) {
    if (v.is_object()) {
      std::vector<std::string> cells;
      for (const auto& [k, x] : v.items())
        if (!x.is_object() && !x.is_array()) cells.push_back(Scalar(x));
      out += Join(cells, "\t") + "\n";
    } else if (v.is_array()) {
      std::vector<std::string> cells;
      for (const auto& x : v) cells.push_back(Scalar(x));
      out += Join(cells, "\t") + "\n";
    } else {
      out += Scalar(v) + "\n";
    }
  };
  if (value.is_array()) {
    for (const auto& v : value) row(v);
  } else {
    row(value);
  }
  return out;
}

std::string ToTable(const json& value, const std::vector<Column>& columns) {
  std::vector<std::string> titles;
  std::vector<std::vector<std::string>> rows;
  if (value.is_array() && !columns.empty()) {
    std::vector<std::unique_ptr<jmespath::Expression>> paths;
    for (const auto& c : columns) {
      titles.push_back(c.title);
      paths.push_back(jmespath::Expression::Compile(c.path, nullptr));
    }
    for (const auto& v : value) {
      std::vector<std::string> r;
      for (size_t i = 0; i < paths.size(); ++i)
        r.push_back(Cell(paths[i].get(), v, columns[i].kind));
      rows.push_back(r);
    }
  } else if (value.is_array()) {
    // Columns from the first object's scalar keys.
    if (!value.empty() && value[0].is_object()) {
      for (const auto& [k, x] : value[0].items())
        if (!x.is_object() && !x.is_array()) titles.push_back(k);
      for (const auto& v : value) {
        std::vector<std::string> r;
        for (const auto& t : titles) r.push_back(v.contains(t) ? TableScalar(v[t]) : "");
        rows.push_back(r);
      }
    } else {
      titles = {"Result"};
      for (const auto& v : value) rows.push_back({TableScalar(v)});
    }
  } else if (value.is_object()) {
    titles = {"Key", "Value"};
    if (!columns.empty()) {
      for (const auto& c : columns) {
        auto p = jmespath::Expression::Compile(c.path, nullptr);
        rows.push_back({c.title, Cell(p.get(), value, c.kind)});
      }
    } else {
      for (const auto& [k, x] : value.items())
        if (!x.is_object() && !x.is_array()) rows.push_back({k, TableScalar(x)});
    }
  } else {
    return Scalar(value) + "\n";
  }
  std::vector<size_t> width(titles.size());
  for (size_t c = 0; c < titles.size(); ++c) {
    width[c] = titles[c].size();
    for (const auto& r : rows) width[c] = std::max(width[c], std::min<size_t>(r[c].size(), 60));
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s;
    for (size_t c = 0; c < cells.size(); ++c) {
      std::string cell = cells[c];
      for (char& ch : cell)
        if (ch == '\n' || ch == '\t') ch = ' ';
      if (cell.size() > 60) cell = cell.substr(0, 57) + "...";
      s += cell;
      if (c + 1 < cells.size()) s += std::string(width[c] - cell.size() + 2, ' ');
    }
    return Trim(s).empty() ? std::string("\n") : s.substr(0, s.find_last_not_of(' ') + 1) + "\n";
  };
  std::string out = line(titles);
  std::vector<std::string> dashes;
  for (size_t c = 0; c < titles.size(); ++c) dashes.push_back(std::string(width[c], '-'));
  out += line(dashes);
  for (const auto& r : rows) out += line(r);
  return out;
}

std::string Render(const json& value, Format format, const std::vector<Column>& columns) {
  switch (format) {
    case Format::kJson:
      return value.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
    case Format::kYaml:
      return ToYaml(value);
    case Format::kTable:
      return ToTable(value, columns);
    case Format::kTsv:
      return ToTsv(value);
    case Format::kNone:
      return "";
  }
  return "";
}

std::string ToYaml(const nlohmann::json& value) { return ToYaml(Ordered(value)); }
std::string ToTsv(const nlohmann::json& value) { return ToTsv(Ordered(value)); }
std::string ToTable(const nlohmann::json& value, const std::vector<Column>& columns) {
  return ToTable(Ordered(value), columns);
}
std::string Render(const nlohmann::json& value, Format format, const std::vector<Column>& columns) {
  return Render(Ordered(value), format, columns);
}

}  // namespace cairn::cli
