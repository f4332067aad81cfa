// How the CLI prints results: Azure CLI's -o json|yaml|table|tsv|none and a --query subset
// (dotted paths, [] projections, [N] indexes, {a:b, c:d} multiselects). Pure functions, thread-safe.
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
  std::string path;  // a query path into each row
};

// Applies a --query expression.
Result<nlohmann::json> ApplyQuery(const nlohmann::json& value, const std::string& query);

std::string ToYaml(const nlohmann::json& value);
std::string ToTsv(const nlohmann::json& value);
// A table of `rows` (an array of objects) with `columns`; a single object prints as Key/Value rows.
std::string ToTable(const nlohmann::json& value, const std::vector<Column>& columns);

std::string Render(const nlohmann::json& value, Format format, const std::vector<Column>& columns);

}  // namespace cairn::cli
