// A YAML document as a tree that keeps every node's place (file, line, column) and the difference
// between quoted and plain scalars. Built from yaml-cpp (the only user of it), with the checks
// yaml-cpp leaves out: duplicate keys, and a bound on the expanded size so an alias bomb is refused
// rather than expanded. Values are plain data: copyable, not thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "spec/diagnostics.h"

namespace cairn::spec {

struct YNode;

struct YEntry;

struct YNode {
  enum class Kind { kNull, kScalar, kMap, kSeq };
  Kind kind = Kind::kNull;
  std::string scalar;   // for kScalar
  bool quoted = false;  // a quoted scalar is always a string
  std::vector<YEntry> map;
  std::vector<YNode> seq;
  std::string file;
  int line = 0;  // 1-based
  int column = 0;

  bool IsMap() const { return kind == Kind::kMap; }
  bool IsSeq() const { return kind == Kind::kSeq; }
  bool IsScalar() const { return kind == Kind::kScalar; }
  bool IsNull() const { return kind == Kind::kNull; }
  const YNode* Get(const std::string& key) const;
  YNode* Get(const std::string& key);
  // "string", "integer", "mapping", ... for error messages.
  std::string TypeName() const;
};

struct YEntry {
  std::string key;
  int line = 0;
  int column = 0;
  YNode value;
};

struct YamlLimits {
  size_t max_bytes = 4 << 20;  // a job file is small; a 100 MB one is a mistake
  size_t max_nodes = 200000;   // counting every alias expansion
  int max_depth = 64;
};

// Parses `text` (named `file` in diagnostics). Returns nullopt after adding errors to `diags`.
std::optional<YNode> ParseYaml(const std::string& text, const std::string& file, Diagnostics& diags,
                               const YamlLimits& limits = {});

// Applies one `--set a.b.c=value` override: creates missing maps, parses the value as a YAML scalar
// or flow collection. Adds an error and returns false when the path runs through a non-map.
bool ApplyOverride(YNode& root, const std::string& assignment, Diagnostics& diags);

// Plain scalar typing per YAML 1.2 core schema.
bool IsYamlNull(const YNode& n);
std::optional<bool> AsBool(const YNode& n);
std::optional<long long> AsInt(const YNode& n);
std::optional<double> AsNumber(const YNode& n);
// The node as JSON: unquoted scalars that read as booleans or numbers become them, the rest
// strings.
nlohmann::json YamlToJson(const YNode& n);

}  // namespace cairn::spec
