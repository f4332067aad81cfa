#include "cli/output.h"

#include <algorithm>
#include <cstring>

#include "base/util.h"

namespace cairn::cli {

using nlohmann::json;

Result<Format> ParseFormat(const std::string& s) {
  if (s == "json" || s == "jsonc") return Format::kJson;
  if (s == "yaml" || s == "yamlc") return Format::kYaml;
  if (s == "table") return Format::kTable;
  if (s == "tsv") return Format::kTsv;
  if (s == "none") return Format::kNone;
  return InvalidArgument("--output: '" + s + "' is not one of json, yaml, table, tsv, none");
}

namespace {

// query := path | '{' key ':' path (',' key ':' path)* '}'
// path := segment ('.' segment)*, segment := name | name '[' ']' | name '[' N ']' | '[' ']' | '[' N ']'
struct QueryParser {
  const std::string& q;
  size_t i = 0;

  Result<json> Eval(const json& v) {
    auto r = Expr(v);
    if (r.ok() && i != q.size()) return InvalidArgument("--query: unexpected '" + q.substr(i) + "'");
    return r;
  }

  void Ws() { while (i < q.size() && isspace(static_cast<unsigned char>(q[i]))) ++i; }

  Result<json> Expr(const json& v) {
    Ws();
    if (i < q.size() && q[i] == '{') return Multi(v);
    return Path(v);
  }

  Result<json> Multi(const json& v) {
    ++i;
    json out = json::object();
    for (;;) {
      Ws();
      size_t start = i;
      while (i < q.size() && (isalnum(static_cast<unsigned char>(q[i])) || q[i] == '_' || q[i] == '-')) ++i;
      std::string key = q.substr(start, i - start);
      Ws();
      if (key.empty() || i >= q.size() || q[i] != ':') return InvalidArgument("--query: expected 'name: path' in {...}");
      ++i;
      auto r = Path(v);
      if (!r.ok()) return r;
      out[key] = *r;
      Ws();
      if (i < q.size() && q[i] == ',') { ++i; continue; }
      if (i < q.size() && q[i] == '}') { ++i; return out; }
      return InvalidArgument("--query: expected ',' or '}'");
    }
  }

  Result<json> Path(const json& v) {
    Ws();
    json cur = v;
    bool first = true;
    while (i < q.size() && q[i] != ',' && q[i] != '}' && !isspace(static_cast<unsigned char>(q[i]))) {
      if (!first) {
        if (q[i] != '.' && q[i] != '[') return InvalidArgument("--query: expected '.' at '" + q.substr(i) + "'");
        if (q[i] == '.') ++i;
      }
      first = false;
      if (q[i] == '[') {
        size_t close = q.find(']', i);
        if (close == std::string::npos) return InvalidArgument("--query: missing ']'");
        std::string inside = q.substr(i + 1, close - i - 1);
        i = close + 1;
        if (inside.empty() || inside == "*") {
          // Projection: the rest of the path applies to every element.
          if (!cur.is_array()) return json(nullptr);
          size_t rest_start = i;
          json out = json::array();
          for (const auto& el : cur) {
            i = rest_start;
            if (i < q.size() && q[i] == '.') ++i;
            auto r = (i < q.size() && q[i] != ',' && q[i] != '}') ? Expr(el) : Result<json>(el);
            if (!r.ok()) return r;
            if (!r->is_null()) out.push_back(*r);
          }
          if (cur.empty()) {  // still consume the rest
            while (i < q.size() && q[i] != ',' && q[i] != '}') ++i;
          }
          return out;
        }
        char* end;
        long idx = strtol(inside.c_str(), &end, 10);
        if (*end) return InvalidArgument("--query: bad index [" + inside + "]");
        if (!cur.is_array()) return json(nullptr);
        if (idx < 0) idx += static_cast<long>(cur.size());
        cur = (idx >= 0 && static_cast<size_t>(idx) < cur.size()) ? cur[static_cast<size_t>(idx)] : json(nullptr);
        continue;
      }
      size_t start = i;
      while (i < q.size() && q[i] != '.' && q[i] != '[' && q[i] != ',' && q[i] != '}' &&
             !isspace(static_cast<unsigned char>(q[i])))
        ++i;
      std::string key = q.substr(start, i - start);
      if (key.empty()) return InvalidArgument("--query: empty name");
      cur = (cur.is_object() && cur.contains(key)) ? cur[key] : json(nullptr);
    }
    return cur;
  }
};

std::string Scalar(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  if (v.is_boolean()) return v.get<bool>() ? "True" : "False";
  return v.dump();
}

bool NeedsQuotes(const std::string& s) {
  if (s.empty()) return true;
  static const char* kWords[] = {"true", "false", "yes", "no", "null", "~", "on", "off", "True", "False",
                                 "Null", "NULL", "TRUE", "FALSE", "Yes", "No"};
  for (const char* w : kWords)
    if (s == w) return true;
  if (isspace(static_cast<unsigned char>(s.front())) || isspace(static_cast<unsigned char>(s.back()))) return true;
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
      if (x.is_object() && !x.empty()) Yaml(x, indent + 2, out, true);
      else Yaml(x, indent + 2, out, false);
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
  QueryParser p{query};
  return p.Eval(value);
}

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
    for (const auto& c : columns) titles.push_back(c.title);
    for (const auto& v : value) {
      std::vector<std::string> r;
      for (const auto& c : columns) {
        auto x = ApplyQuery(v, c.path);
        r.push_back(x.ok() ? Scalar(*x) : "");
      }
      rows.push_back(r);
    }
  } else if (value.is_array()) {
    // Columns from the first object's scalar keys.
    if (!value.empty() && value[0].is_object()) {
      for (const auto& [k, x] : value[0].items())
        if (!x.is_object() && !x.is_array()) titles.push_back(k);
      for (const auto& v : value) {
        std::vector<std::string> r;
        for (const auto& t : titles) r.push_back(v.contains(t) ? Scalar(v[t]) : "");
        rows.push_back(r);
      }
    } else {
      titles = {"Result"};
      for (const auto& v : value) rows.push_back({Scalar(v)});
    }
  } else if (value.is_object()) {
    titles = {"Key", "Value"};
    if (!columns.empty()) {
      for (const auto& c : columns) {
        auto x = ApplyQuery(value, c.path);
        rows.push_back({c.title, x.ok() ? Scalar(*x) : ""});
      }
    } else {
      for (const auto& [k, x] : value.items())
        if (!x.is_object() && !x.is_array()) rows.push_back({k, Scalar(x)});
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
    case Format::kJson: return value.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
    case Format::kYaml: return ToYaml(value);
    case Format::kTable: return ToTable(value, columns);
    case Format::kTsv: return ToTsv(value);
    case Format::kNone: return "";
  }
  return "";
}

}  // namespace cairn::cli
