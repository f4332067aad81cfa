#include "tracking/run_filter.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <cstring>
#include <string_view>

#include "base/util.h"
#include "tracking/tracking_store.h"

namespace cairn::tracking {

namespace {

struct Lexer {
  const std::string& s;
  size_t i = 0;
  void Ws() {
    while (i < s.size() && isspace(static_cast<unsigned char>(s[i]))) ++i;
  }
  bool AtEnd() {
    Ws();
    return i >= s.size();
  }
  // An identifier: a run of word characters and dots, or a quoted part ("..." or `...`).
  std::string Ident() {
    Ws();
    std::string out;
    while (i < s.size()) {
      char c = s[i];
      if (c == '"' || c == '`') {
        size_t close = s.find(c, i + 1);
        if (close == std::string::npos) return "";
        out += s.substr(i + 1, close - i - 1);
        i = close + 1;
      } else if (isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-' ||
                 c == '/' || c == ':') {
        out += c;
        ++i;
      } else {
        break;
      }
    }
    return out;
  }
  std::string Op() {
    Ws();
    for (const char* op : {"!=", ">=", "<=", "=", ">", "<"}) {
      if (s.compare(i, strlen(op), op) == 0) {
        i += strlen(op);
        return op;
      }
    }
    std::string word;
    size_t j = i;
    while (j < s.size() && isalpha(static_cast<unsigned char>(s[j])))
      word += static_cast<char>(toupper(s[j++]));
    if (word == "LIKE" || word == "ILIKE" || word == "IN") {
      i = j;
      return word;
    }
    if (word == "NOT") {
      i = j;
      Ws();
      size_t k = i;
      std::string in;
      while (k < s.size() && isalpha(static_cast<unsigned char>(s[k])))
        in += static_cast<char>(toupper(s[k++]));
      if (in == "IN") {
        i = k;
        return "NOT IN";
      }
    }
    return "";
  }
  std::optional<std::string> Quoted() {
    Ws();
    if (i >= s.size() || (s[i] != '\'' && s[i] != '"')) return std::nullopt;
    char q = s[i];
    size_t close = s.find(q, i + 1);
    if (close == std::string::npos) return std::nullopt;
    std::string v = s.substr(i + 1, close - i - 1);
    i = close + 1;
    return v;
  }
  std::string Number() {
    Ws();
    size_t j = i;
    while (j < s.size() && (isdigit(static_cast<unsigned char>(s[j])) || strchr("+-.eE", s[j])))
      ++j;
    std::string v = s.substr(i, j - i);
    i = j;
    return v;
  }
};

bool SplitIdent(const std::string& ident, const FilterSchema& schema, std::string& kind,
                std::string& key) {
  size_t dot = ident.find('.');
  std::string prefix = dot == std::string::npos ? "" : ToLower(ident.substr(0, dot));
  std::string rest = dot == std::string::npos ? ident : ident.substr(dot + 1);
  if (prefix == "metrics" || prefix == "metric")
    kind = "metric";
  else if (prefix == "params" || prefix == "param" || prefix == "parameters" ||
           prefix == "parameter")
    kind = "param";
  else if (prefix == "tags" || prefix == "tag")
    kind = "tag";
  else if (prefix == "attributes" || prefix == "attribute" || prefix == "attr" || prefix == "run")
    kind = "attribute";
  else {
    kind = "attribute";
    rest = ident;
  }
  key = rest;
  if (kind == "attribute") {
    std::string k = ToLower(key);
    if (k == "run name")
      key = "run_name";
    else if (k == "created")
      key = "start_time";
    if (std::find(schema.string_attrs.begin(), schema.string_attrs.end(), key) ==
            schema.string_attrs.end() &&
        std::find(schema.number_attrs.begin(), schema.number_attrs.end(), key) ==
            schema.number_attrs.end())
      return false;
  }
  return !key.empty();
}

bool IsNumericAttr(const std::string& key) { return key == "start_time" || key == "end_time"; }

std::optional<std::string_view> StringValue(const Run& r, const std::string& kind,
                                            const std::string& key) {
  const std::vector<KeyValue>* list = kind == "param" ? &r.params
                                      : kind == "tag" ? &r.tags
                                                      : nullptr;
  if (list) {
    for (const auto& kv : *list)
      if (kv.key == key) return kv.value;
    return std::nullopt;
  }
  if (key == "run_id") return r.info.run_id;
  if (key == "run_name") return r.info.run_name;
  if (key == "status") return r.info.status;
  if (key == "user_id") return r.info.user_id;
  if (key == "artifact_uri") return r.info.artifact_uri;
  if (key == "lifecycle_stage") return r.info.lifecycle_stage;
  return std::nullopt;
}

std::optional<double> NumberValue(const Run& r, const std::string& kind, const std::string& key) {
  if (kind == "metric") {
    for (const auto& m : r.metrics)
      if (m.key == key) return m.value;
    return std::nullopt;
  }
  if (key == "start_time" && r.info.start_time) return static_cast<double>(*r.info.start_time);
  if (key == "end_time" && r.info.end_time) return static_cast<double>(*r.info.end_time);
  return std::nullopt;
}

}  // namespace

bool LikeMatch(std::string_view value, std::string_view pattern, bool icase) {
  // Wildcard matching with backtracking to the last '%' only: linear in practice, no regex to
  // compile per run.
  auto eq = [icase](char a, char b) {
    return icase ? tolower(static_cast<unsigned char>(a)) == tolower(static_cast<unsigned char>(b))
                 : a == b;
  };
  size_t v = 0, p = 0, star = std::string_view::npos, mark = 0;
  while (v < value.size()) {
    if (p < pattern.size() && pattern[p] == '%') {
      star = p++;
      mark = v;
    } else if (p < pattern.size() && (pattern[p] == '_' || eq(pattern[p], value[v]))) {
      ++p;
      ++v;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      v = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '%') ++p;
  return p == pattern.size();
}

const FilterSchema& RunSchema() {
  static const FilterSchema kRun{
      {"run_id", "run_name", "status", "user_id", "artifact_uri", "lifecycle_stage"},
      {"start_time", "end_time"}};
  return kRun;
}

const FilterSchema& LoggedModelSchema() {
  static const FilterSchema kModel{{"model_id", "name", "model_type", "status", "source_run_id"},
                                   {"creation_timestamp", "last_updated_timestamp"}};
  return kModel;
}

Result<RunFilter> ParseRunFilter(const std::string& text) { return ParseFilter(text, RunSchema()); }

Result<RunFilter> ParseFilter(const std::string& text, const FilterSchema& schema) {
  auto numeric_attr = [&](const std::string& key) {
    return std::find(schema.number_attrs.begin(), schema.number_attrs.end(), key) !=
           schema.number_attrs.end();
  };
  RunFilter out;
  Lexer lx{text};
  if (lx.AtEnd()) return out;
  for (;;) {
    Clause c;
    std::string ident = lx.Ident();
    if (ident.empty() || !SplitIdent(ident, schema, c.kind, c.key))
      return InvalidArgument("Invalid filter '" + text + "': cannot read an identifier at '" +
                             text.substr(std::min(lx.i, text.size())) + "'");
    c.op = lx.Op();
    if (c.op.empty())
      return InvalidArgument("Invalid filter '" + text + "': expected a comparator after '" +
                             ident + "'");
    c.numeric = c.kind == "metric" || (c.kind == "attribute" && numeric_attr(c.key));
    if (c.op == "IN" || c.op == "NOT IN") {
      if (c.numeric || c.kind == "metric")
        return InvalidArgument("Invalid filter '" + text + "': IN needs a string attribute");
      lx.Ws();
      if (lx.i >= text.size() || text[lx.i] != '(')
        return InvalidArgument("Invalid filter '" + text + "': expected '(' after IN");
      ++lx.i;
      for (;;) {
        auto v = lx.Quoted();
        if (!v)
          return InvalidArgument("Invalid filter '" + text +
                                 "': expected a quoted value in IN (...)");
        c.values.push_back(*v);
        lx.Ws();
        if (lx.i < text.size() && text[lx.i] == ',') {
          ++lx.i;
          continue;
        }
        if (lx.i < text.size() && text[lx.i] == ')') {
          ++lx.i;
          break;
        }
        return InvalidArgument("Invalid filter '" + text + "': expected ',' or ')'");
      }
    } else if (c.numeric) {
      if (c.op == "LIKE" || c.op == "ILIKE")
        return InvalidArgument("Invalid comparator '" + c.op + "' for a numeric field in filter '" +
                               text + "'");
      std::string n = lx.Number();
      char* end = nullptr;
      strtod(n.c_str(), &end);
      if (n.empty() || *end)
        return InvalidArgument("Invalid filter '" + text + "': expected a number after '" + ident +
                               " " + c.op + "'");
      c.number = strtod(n.c_str(), nullptr);
      c.values.push_back(n);
    } else {
      if (c.op != "=" && c.op != "!=" && c.op != "LIKE" && c.op != "ILIKE")
        return InvalidArgument("Invalid comparator '" + c.op + "' for a string field in filter '" +
                               text + "'");
      auto v = lx.Quoted();
      if (!v)
        return InvalidArgument("Invalid filter '" + text + "': expected a quoted string after '" +
                               ident + " " + c.op + "'");
      c.values.push_back(*v);
    }
    out.push_back(c);
    if (lx.AtEnd()) return out;
    std::string word = lx.Ident();
    if (ToLower(word) != "and")
      return InvalidArgument("Invalid filter '" + text + "': clauses are joined by AND only");
  }
}

Result<RunOrder> ParseRunOrder(const std::vector<std::string>& order_by) {
  RunOrder out;
  for (const auto& o : order_by) {
    Lexer lx{o};
    OrderKey k;
    std::string ident = lx.Ident();
    if (ident.empty() || !SplitIdent(ident, RunSchema(), k.kind, k.key))
      return InvalidArgument("Invalid order_by clause '" + o + "'");
    std::string dir = ToLower(Trim(o.substr(std::min(lx.i, o.size()))));
    if (dir == "desc")
      k.ascending = false;
    else if (!dir.empty() && dir != "asc")
      return InvalidArgument("Invalid order_by clause '" + o + "'");
    out.push_back(k);
  }
  return out;
}

namespace {
class RunFields : public FieldSource {
 public:
  explicit RunFields(const Run& r) : r_(r) {}
  std::optional<std::string_view> String(const std::string& kind,
                                         const std::string& key) const override {
    return StringValue(r_, kind, key);
  }
  std::optional<double> Number(const std::string& kind, const std::string& key) const override {
    return NumberValue(r_, kind, key);
  }

 private:
  const Run& r_;
};
}  // namespace

bool Matches(const RunFilter& filter, const Run& run) { return Matches(filter, RunFields(run)); }

bool Matches(const RunFilter& filter, const FieldSource& source) {
  for (const auto& c : filter) {
    if (c.numeric) {
      auto v = source.Number(c.kind, c.key);
      if (!v) return false;
      double x = c.number;
      bool ok = c.op == "="    ? *v == x
                : c.op == "!=" ? *v != x
                : c.op == ">"  ? *v > x
                : c.op == ">=" ? *v >= x
                : c.op == "<"  ? *v < x
                               : *v <= x;
      if (!ok) return false;
    } else {
      auto v = source.String(c.kind, c.key);
      if (!v) return false;
      bool ok;
      if (c.op == "=")
        ok = *v == c.values[0];
      else if (c.op == "!=")
        ok = *v != c.values[0];
      else if (c.op == "LIKE")
        ok = LikeMatch(*v, c.values[0], false);
      else if (c.op == "ILIKE")
        ok = LikeMatch(*v, c.values[0], true);
      else {
        bool in = std::find(c.values.begin(), c.values.end(), *v) != c.values.end();
        ok = c.op == "IN" ? in : !in;
      }
      if (!ok) return false;
    }
  }
  return true;
}

SortValue OrderValue(const OrderKey& k, const FieldSource& r) {
  SortValue v;
  v.numeric = k.kind == "metric" || (k.kind == "attribute" && IsNumericAttr(k.key));
  if (v.numeric) {
    if (auto x = r.Number(k.kind, k.key)) {
      v.present = true;
      v.num = *x;
    }
  } else if (auto x = r.String(k.kind, k.key)) {
    v.present = true;
    v.str = *x;
  }
  return v;
}

SortValue OrderValue(const OrderKey& k, const Run& r) { return OrderValue(k, RunFields(r)); }

int CompareOrderValues(const OrderKey& k, const SortValue& x, const SortValue& y) {
  // Missing values last and NaN after every number, whatever the direction (as MLflow's SQL store
  // orders).
  if (!x.present || !y.present) return x.present == y.present ? 0 : x.present ? -1 : 1;
  if (x.numeric) {
    bool xn = std::isnan(x.num), yn = std::isnan(y.num);
    if (xn || yn) return xn == yn ? 0 : xn ? 1 : -1;
    if (x.num == y.num) return 0;
    return (x.num < y.num) == k.ascending ? -1 : 1;
  }
  int c = x.str.compare(y.str);
  if (c == 0) return 0;
  return (c < 0) == k.ascending ? -1 : 1;
}

bool RunBefore(const RunOrder& order, const Run& a, const Run& b) {
  for (const auto& k : order)
    if (int c = CompareOrderValues(k, OrderValue(k, a), OrderValue(k, b)); c != 0) return c < 0;
  long long sa = a.info.start_time.value_or(0), sb = b.info.start_time.value_or(0);
  if (sa != sb) return sa > sb;
  return a.info.run_id < b.info.run_id;
}

void SortRuns(const RunOrder& order, std::vector<Run>& runs) {
  std::stable_sort(runs.begin(), runs.end(),
                   [&](const Run& a, const Run& b) { return RunBefore(order, a, b); });
}

}  // namespace cairn::tracking
