#include "spec/yaml_tree.h"

#include <unordered_map>

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstdlib>

#include "base/util.h"

namespace cairn::spec {

const YNode* YNode::Get(const std::string& key) const {
  for (const auto& e : map)
    if (e.key == key) return &e.value;
  return nullptr;
}

YNode* YNode::Get(const std::string& key) {
  for (auto& e : map)
    if (e.key == key) return &e.value;
  return nullptr;
}

std::string YNode::TypeName() const {
  switch (kind) {
    case Kind::kNull:
      return "null";
    case Kind::kMap:
      return "a mapping";
    case Kind::kSeq:
      return "a list";
    case Kind::kScalar:
      if (quoted) return "a string";
      if (AsBool(*this)) return "a boolean";
      if (AsInt(*this)) return "an integer";
      if (AsNumber(*this)) return "a number";
      return "a string";
  }
  return "?";
}

namespace {

struct Converter {
  const std::string& file;
  Diagnostics& diags;
  const YamlLimits& limits;
  size_t nodes = 0;
  bool too_big = false;

  bool Convert(const YAML::Node& in, YNode& out, int depth, int fallback_line, int fallback_col) {
    if (++nodes > limits.max_nodes) {
      if (!too_big) {
        diags.Error(file, 0, 0,
                    "the document expands to more than " + std::to_string(limits.max_nodes) +
                        " nodes (an alias bomb?); refusing to read it");
      }
      too_big = true;
      return false;
    }
    if (depth > limits.max_depth) {
      diags.Error(file, fallback_line, fallback_col,
                  "nesting deeper than " + std::to_string(limits.max_depth) + " levels");
      too_big = true;
      return false;
    }
    out.file = file;
    YAML::Mark m = in.Mark();
    if (m.line >= 0 && !in.IsNull()) {
      out.line = m.line + 1;
      out.column = m.column + 1;
    } else {
      out.line = fallback_line;
      out.column = fallback_col;
    }
    switch (in.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        out.kind = YNode::Kind::kNull;
        return true;
      case YAML::NodeType::Scalar:
        out.kind = YNode::Kind::kScalar;
        out.scalar = in.Scalar();
        out.quoted = in.Tag() == "!";
        return true;
      case YAML::NodeType::Sequence:
        out.kind = YNode::Kind::kSeq;
        for (const auto& child : in) {
          out.seq.emplace_back();
          if (!Convert(child, out.seq.back(), depth + 1, out.line, out.column)) return false;
        }
        return true;
      case YAML::NodeType::Map:
        out.kind = YNode::Kind::kMap;
        // Keys seen so far -> their index in out.map: a duplicate check per key that costs O(1),
        // not a scan (80,000 keys took 18 s to validate with one).
        std::unordered_map<std::string, size_t> seen;
        for (auto it = in.begin(); it != in.end(); ++it) {
          YEntry e;
          YAML::Mark km = it->first.Mark();
          e.line = km.line + 1;
          e.column = km.column + 1;
          if (!it->first.IsScalar()) {
            diags.Error(file, e.line, e.column, "a mapping key must be a plain string");
            continue;
          }
          e.key = it->first.Scalar();
          if (auto found = seen.find(e.key); found != seen.end()) {
            const YNode* prev = &out.map[found->second].value;
            int first_line = out.map[found->second].line;
            // The same scalar twice is noise (real Azure ML files have it); anything else is
            // ambiguous.
            YNode again;
            Diagnostics ignored;
            Converter inner{file, ignored, limits};
            bool same = inner.Convert(it->second, again, depth + 1, e.line, e.column) &&
                        again.IsScalar() && prev->IsScalar() && again.scalar == prev->scalar &&
                        again.quoted == prev->quoted;
            if (same) {
              diags.Warning(file, e.line, e.column,
                            "duplicate key '" + e.key + "' repeats the value of line " +
                                std::to_string(first_line));
            } else {
              diags.Error(file, e.line, e.column,
                          "duplicate key '" + e.key + "' (first defined on line " +
                              std::to_string(first_line) + ")");
            }
            continue;
          }
          if (!Convert(it->second, e.value, depth + 1, e.line,
                       e.column + static_cast<int>(e.key.size()) + 2))
            return false;
          seen.emplace(e.key, out.map.size());
          out.map.push_back(std::move(e));
        }
        return true;
    }
    return true;
  }
};

}  // namespace

std::optional<YNode> ParseYaml(const std::string& text, const std::string& file, Diagnostics& diags,
                               const YamlLimits& limits) {
  if (text.size() > limits.max_bytes) {
    diags.Error(file, 0, 0,
                "file is " + std::to_string(text.size()) + " bytes; a job file may be at most " +
                    std::to_string(limits.max_bytes) + " bytes");
    return std::nullopt;
  }
  // Every value becomes JSON, which is UTF-8: a file that is not is refused where it stops being
  // UTF-8 (found by the job_yaml fuzz target: a stray byte in a search space crashed the CLI).
  if (!IsValidUtf8(text)) {
    size_t good = Utf8ValidPrefix(text);
    int line = 1, column = 1;
    for (size_t i = 0; i < good; ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {
        ++column;
      }
    }
    diags.Error(file, line, column, "the file is not valid UTF-8 here");
    return std::nullopt;
  }
  YAML::Node doc;
  try {
    doc = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    diags.Error(file, e.mark.line + 1, e.mark.column + 1, "invalid YAML: " + e.msg);
    return std::nullopt;
  }
  YNode root;
  Converter c{file, diags, limits};
  if (!c.Convert(doc, root, 0, 1, 1)) return std::nullopt;
  return root;
}

bool ApplyOverride(YNode& root, const std::string& assignment, Diagnostics& diags) {
  size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    diags.Error("--set", 0, 0,
                "'" + assignment + "': expected KEY=VALUE (for example inputs.epochs=3)");
    return false;
  }
  std::string key = Trim(assignment.substr(0, eq));
  std::string value = assignment.substr(eq + 1);
  std::vector<std::string> path = Split(key, '.');
  for (const auto& p : path) {
    if (p.empty()) {
      diags.Error("--set", 0, 0, "'" + key + "': empty path segment");
      return false;
    }
  }
  if (root.IsNull()) root.kind = YNode::Kind::kMap;
  YNode* cur = &root;
  for (size_t i = 0; i < path.size(); ++i) {
    if (cur->IsNull()) cur->kind = YNode::Kind::kMap;
    if (!cur->IsMap()) {
      diags.Error("--set", 0, 0,
                  "'" + key + "': '" +
                      Join({path.begin(), path.begin() + static_cast<long>(i)}, ".") + "' is " +
                      cur->TypeName() + ", not a mapping");
      return false;
    }
    YNode* next = cur->Get(path[i]);
    if (!next) {
      YEntry e;
      e.key = path[i];
      cur->map.push_back(std::move(e));
      next = &cur->map.back().value;
    }
    cur = next;
  }
  // Parse the value as YAML so `inputs.epochs=3` is an integer and `tags.x="a b"` a string.
  Diagnostics inner;
  auto parsed = ParseYaml(value, "--set " + key, inner);
  YNode v;
  if (parsed && !inner.HasErrors()) {
    v = *parsed;
  } else {
    v.kind = YNode::Kind::kScalar;
    v.scalar = value;
    v.quoted = true;
  }
  if (value.empty()) {
    v = YNode();
    v.kind = YNode::Kind::kScalar;
    v.quoted = true;
  }
  // Every node that came from the command line is placed there, not in the file.
  struct Mark {
    static void Set(YNode& n, const std::string& where) {
      n.file = where;
      n.line = 0;
      n.column = 0;
      for (auto& e : n.map) {
        e.line = 0;
        Set(e.value, where);
      }
      for (auto& s : n.seq) Set(s, where);
    }
  };
  Mark::Set(v, "--set " + key);
  *cur = std::move(v);
  return true;
}

bool IsYamlNull(const YNode& n) {
  if (n.IsNull()) return true;
  if (!n.IsScalar() || n.quoted) return false;
  return n.scalar == "~" || n.scalar == "null" || n.scalar == "Null" || n.scalar == "NULL";
}

std::optional<bool> AsBool(const YNode& n) {
  if (!n.IsScalar() || n.quoted) return std::nullopt;
  const std::string& s = n.scalar;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  return std::nullopt;
}

std::optional<long long> AsInt(const YNode& n) {
  if (!n.IsScalar() || n.quoted || n.scalar.empty()) return std::nullopt;
  const char* b = n.scalar.c_str();
  char* end = nullptr;
  errno = 0;
  long long v = strtoll(b, &end, 10);
  if (errno || *end != '\0') return std::nullopt;
  return v;
}

std::optional<double> AsNumber(const YNode& n) {
  if (!n.IsScalar() || n.quoted || n.scalar.empty()) return std::nullopt;
  const std::string& s = n.scalar;
  if (s == ".inf" || s == ".Inf" || s == "+.inf") return HUGE_VAL;
  if (s == "-.inf" || s == "-.Inf") return -HUGE_VAL;
  if (s == ".nan" || s == ".NaN") return NAN;
  char* end = nullptr;
  double v = strtod(s.c_str(), &end);
  if (*end != '\0') return std::nullopt;
  // strtod accepts "inf", "nan" and hex, YAML does not.
  for (char c : s)
    if (isalpha(static_cast<unsigned char>(c)) && c != 'e' && c != 'E') return std::nullopt;
  return v;
}

nlohmann::json YamlToJson(const YNode& n) {
  switch (n.kind) {
    case YNode::Kind::kNull:
      return nullptr;
    case YNode::Kind::kScalar:
      if (!n.quoted) {
        if (auto b = AsBool(n)) return *b;
        if (auto i = AsInt(n)) return *i;
        if (auto x = AsNumber(n)) return *x;
      }
      return n.scalar;
    case YNode::Kind::kSeq: {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& c : n.seq) a.push_back(YamlToJson(c));
      return a;
    }
    case YNode::Kind::kMap: {
      nlohmann::json o = nlohmann::json::object();
      for (const auto& e : n.map) o[e.key] = YamlToJson(e.value);
      return o;
    }
  }
  return nullptr;
}

}  // namespace cairn::spec
