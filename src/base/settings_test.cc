#include "base/settings.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

namespace cairn::settings {
namespace {

namespace fs = std::filesystem;

std::string Slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::set<std::string> Names() {
  std::set<std::string> names;
  for (const auto& s : All()) names.insert(std::string(s.name));
  return names;
}

TEST(Settings, EveryReadGoesThroughTheTableAndNamesAVariableInIt) {
  const fs::path src = fs::path(CAIRN_SOURCE_DIR) / "src";
  const std::regex direct(R"re(getenv\(\s*"CAIRN_)re");
  const std::regex through(R"re(settings::(?:Get|Text|Integer|Is)\(\s*"(CAIRN_[A-Z0-9_]+)")re");
  const std::set<std::string> names = Names();
  int reads = 0;
  for (const auto& e : fs::recursive_directory_iterator(src)) {
    const std::string ext = e.path().extension().string();
    if (ext != ".cc" && ext != ".h") continue;
    const std::string file = e.path().filename().string();
    if (file.rfind("settings", 0) == 0) continue;
    const std::string text = Slurp(e.path());
    EXPECT_FALSE(std::regex_search(text, direct))
        << e.path()
        << " reads a CAIRN_ variable with getenv: use settings::Get (src/base/settings.h)";
    for (std::sregex_iterator m(text.begin(), text.end(), through), end; m != end; ++m, ++reads)
      EXPECT_TRUE(names.count((*m)[1].str()))
          << e.path() << " reads " << (*m)[1].str() << ", which the table lacks";
  }
  EXPECT_GT(reads, 20);  // the scan found the reads at all
}

TEST(Settings, TheDocsListExactlyTheTable) {
  const fs::path doc = fs::path(CAIRN_SOURCE_DIR) / "docs" / "configuration.md";
  ASSERT_TRUE(fs::exists(doc)) << doc;
  const std::string text = Slurp(doc);
  // The settings table's rows: "| `CAIRN_X` | default | read by | meaning |".
  std::set<std::string> documented;
  const std::regex row(R"re(\n\| `(CAIRN_[A-Z0-9_]+)` \|)re");
  for (std::sregex_iterator m(text.begin(), text.end(), row), end; m != end; ++m)
    documented.insert((*m)[1].str());
  for (const auto& s : All()) {
    EXPECT_TRUE(documented.count(std::string(s.name)))
        << "docs/configuration.md lacks " << s.name << "; its row:\n| `" << s.name << "` | "
        << s.fallback << " | " << s.reader << " | " << s.meaning << " |";
  }
  for (const auto& d : documented)
    EXPECT_TRUE(Names().count(d)) << "docs/configuration.md lists " << d
                                  << ", which the table lacks";
}

TEST(Settings, ValuesDefaultsAndIntegers) {
  unsetenv("CAIRN_KILL_GRACE_MS");
  EXPECT_EQ(Get("CAIRN_KILL_GRACE_MS"), std::nullopt);
  EXPECT_EQ(Text("CAIRN_KILL_GRACE_MS"), "5000");
  EXPECT_EQ(Integer("CAIRN_KILL_GRACE_MS"), 5000);
  setenv("CAIRN_KILL_GRACE_MS", "250", 1);
  EXPECT_EQ(Integer("CAIRN_KILL_GRACE_MS"), 250);
  setenv("CAIRN_KILL_GRACE_MS", "2s", 1);  // not an integer: the default
  EXPECT_EQ(Integer("CAIRN_KILL_GRACE_MS"), 5000);
  unsetenv("CAIRN_KILL_GRACE_MS");
  // Empty is a value for Get (CAIRN_GPUS= declares no GPUs), the default for Text.
  setenv("CAIRN_NVIDIA_SMI", "", 1);
  EXPECT_EQ(Get("CAIRN_NVIDIA_SMI"), std::optional<std::string>(""));
  EXPECT_EQ(Text("CAIRN_NVIDIA_SMI"), "nvidia-smi");
  unsetenv("CAIRN_NVIDIA_SMI");
  setenv("CAIRN_CONTAINERS", "off", 1);
  EXPECT_TRUE(Is("CAIRN_CONTAINERS", "off"));
  EXPECT_FALSE(Is("CAIRN_CONTAINERS", "strict"));
  unsetenv("CAIRN_CONTAINERS");
  EXPECT_FALSE(Is("CAIRN_CONTAINERS", "off"));
}

TEST(SettingsDeathTest, ANameOutsideTheTableAborts) {
  EXPECT_DEATH(Get("CAIRN_NOT_A_SETTING"), "not in the settings table");
}

}  // namespace
}  // namespace cairn::settings
