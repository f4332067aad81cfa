// How the CLI prints results: Azure CLI's -o json|yaml|table|tsv|none and --query, which is
// JMESPath (base/jmespath.h) as in az. Results are ordered JSON: a multiselect hash prints its keys
// in the order the query names them. Pure functions, thread-safe.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace cairn::cli {

enum class Format { kJson, kYaml, kTable, kTsv, kNone };
Result<Format> ParseFormat(const std::string& s);

struct Column {
  std::string title;
  std::string path;                             // a query path into each row
  enum Kind { kText, kDuration } kind = kText;  // kDuration: seconds shown as "1m 12s"
};

// Applies a --query expression: InvalidArgument for one that does not compile, FailedPrecondition
// for one that fails on this value (a function given the wrong type).
Result<nlohmann::ordered_json> ApplyQuery(const nlohmann::ordered_json& value,
                                          const std::string& query);
Result<nlohmann::ordered_json> ApplyQuery(const nlohmann::json& value, const std::string& query);

std::string ToYaml(const nlohmann::ordered_json& value);
std::string ToYaml(const nlohmann::json& value);
std::string ToTsv(const nlohmann::ordered_json& value);
std::string ToTsv(const nlohmann::json& value);
// A table of `rows` (an array of objects) with `columns`; a single object prints as Key/Value rows.
std::string ToTable(const nlohmann::ordered_json& value, const std::vector<Column>& columns);
std::string ToTable(const nlohmann::json& value, const std::vector<Column>& columns);

std::string Render(const nlohmann::ordered_json& value, Format format,
                   const std::vector<Column>& columns);
std::string Render(const nlohmann::json& value, Format format, const std::vector<Column>& columns);

}  // namespace cairn::cli
