// Every CAIRN_* environment variable Cairn reads, in one table: its name, default, who reads it and
// what it does. Every read goes through here (settings_test.cc fails on a getenv("CAIRN_ anywhere
// else, and on a variable missing from docs/configuration.md), so the table is the whole list.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace cairn::settings {

struct Setting {
  std::string_view name;      // CAIRN_...
  std::string_view fallback;  // the default, as the variable would spell it ("" when there is none)
  std::string_view reader;    // who reads it: server, CLI, supervisor, internal
  std::string_view meaning;
};

std::span<const Setting> All();

// The variable's value; nullopt when it is unset. An empty value is a value (CAIRN_GPUS= declares
// none). A name not in the table is a programming error: it aborts.
std::optional<std::string> Get(std::string_view name);
// The value when set and not empty, else the table's default.
std::string Text(std::string_view name);
// Text(name) as an integer; the default when the value is not one.
long long Integer(std::string_view name);
// Whether the variable is set to exactly `value`.
bool Is(std::string_view name, std::string_view value);

}  // namespace cairn::settings
