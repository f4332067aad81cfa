// A seeded, deterministic fuzz of the parsers of outside input: every corpus job file, mutated many
// ways (bytes flipped, inserted, deleted, lines swapped, cut short), must give a spec or
// diagnostics, never a crash, a hang or (under the sanitizer build CI runs) a memory error. The
// same for the JSON wire forms.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "spec/compute_spec.h"
#include "spec/job_spec.h"
#include "store/blob_store.h"

namespace cairn::spec {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> CorpusFiles() {
  std::vector<std::string> out;
  fs::path root = fs::path(CAIRN_SOURCE_DIR) / ".." / "shared" / "conformance";
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return out;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       it != fs::recursive_directory_iterator(); ++it) {
    if (it->path().extension() == ".yml" || it->path().extension() == ".yaml") {
      std::ifstream f(it->path());
      std::stringstream ss;
      ss << f.rdbuf();
      out.push_back(ss.str());
    }
  }
  return out;
}

std::string Mutate(std::string s, std::mt19937& rng) {
  static const std::string kBytes = ":-{}[]&*!|>'\"%@`#,?\n\t ${}.azureml0123456789";
  int edits = 1 + static_cast<int>(rng() % 4);
  for (int i = 0; i < edits && !s.empty(); ++i) {
    size_t at = rng() % s.size();
    switch (rng() % 6) {
      case 0:
        s[at] = kBytes[rng() % kBytes.size()];
        break;
      case 1:
        s.insert(at, 1, kBytes[rng() % kBytes.size()]);
        break;
      case 2:
        s.erase(at, 1 + rng() % 8);
        break;
      case 3:
        s.resize(at);
        break;
      case 4:
        s.insert(at, s.substr(rng() % s.size(), 1 + rng() % 40));
        break;
      case 5:
        s[at] = static_cast<char>(rng() % 256);
        break;
    }
  }
  return s;
}

TEST(ParserFuzz, MutatedCorpusFilesNeverCrashTheJobParser) {
  auto files = CorpusFiles();
  if (files.empty()) GTEST_SKIP() << "the conformance corpus (../shared) is not here";
  std::mt19937 rng(20261126);
  int parsed = 0, refused = 0;
  ParseOptions opt;
  opt.check_local_paths = false;
  for (const auto& original : files) {
    for (int i = 0; i < 60; ++i) {
      std::string text = Mutate(original, rng);
      Diagnostics d;
      auto spec = ParseJobText(text, "fuzz.yml", "/base", opt, d);
      if (spec) {
        ++parsed;
        // What parses must survive the wire form too.
        auto back = JobSpecFromJson(ToJson(*spec));
        ASSERT_TRUE(back.ok()) << back.status().message() << "\n" << text;
      } else {
        ++refused;
        ASSERT_TRUE(d.HasErrors()) << text;  // refused always says why
      }
      Diagnostics dc;
      (void)ParseComputeText(text, "fuzz.yml", {}, dc);
    }
  }
  EXPECT_GT(parsed, 0);
  EXPECT_GT(refused, 0);
}

TEST(ParserFuzz, MalformedWireJsonIsRefusedNotFatal) {
  std::mt19937 rng(7);
  std::string good = ToJson(JobSpec{}).dump();
  good.replace(good.find("\"command\":\"\""), 12, "\"command\":\"echo\"");
  int refused = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string text = Mutate(good, rng);
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded()) continue;
    auto s = JobSpecFromJson(j);
    if (!s.ok()) ++refused;
    (void)store::ManifestFromJson(j);
    (void)ComputeSpecFromJson(j.is_object() ? j : nlohmann::json::object());
  }
  EXPECT_GT(refused, 0);
}

}  // namespace
}  // namespace cairn::spec
