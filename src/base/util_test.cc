#include "base/util.h"

#include <gtest/gtest.h>

#include <regex>

namespace cairn {
namespace {

TEST(Sha256, MatchesTheStandardTestVectors) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, IncrementalUpdatesEqualOneShot) {
  std::string data(1000000, 'a');
  Sha256 h;
  for (size_t i = 0; i < data.size(); i += 777)
    h.Update(data.data() + i, std::min<size_t>(777, data.size() - i));
  EXPECT_EQ(h.HexDigest(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, LongNonRepeatingInputMatchesAnIndependentHash) {
  // 16384 blocks through the SHA-NI path where the CPU has it (hashlib's digest of the same bytes).
  std::string data(1 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 7 + 3) % 251);
  EXPECT_EQ(Sha256Hex(data), "1ac437f476c488acba4000af7ae89ef53f7ffbeef2e937850985f5ceb8b5ae6f");
  EXPECT_EQ(Sha256Hex(data.substr(3, 1000)),
            Sha256Hex(std::string(data.begin() + 3, data.begin() + 1003)));
}

TEST(ClosestMatch, SuggestsNearKeysOnly) {
  EXPECT_EQ(ClosestMatch("comand", {"command", "code", "compute"}), "command");
  EXPECT_EQ(ClosestMatch("enviroment", {"environment", "experiment_name"}), "environment");
  EXPECT_EQ(ClosestMatch("zzzzzz", {"command", "code"}), "");
}

TEST(GenerateJobName, HasAzureMlShape) {
  std::regex shape("[a-z]+_[a-z]+_[bcdfghjklmnpqrstvwxyz0-9]{10}");
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(std::regex_match(GenerateJobName(), shape));
  EXPECT_NE(GenerateJobName(), GenerateJobName());
}

TEST(IsValidName, AcceptsAzureNamesAndRejectsPaths) {
  EXPECT_TRUE(IsValidName("my_run_1"));
  EXPECT_TRUE(IsValidName("cpu-cluster"));
  EXPECT_FALSE(IsValidName("../etc"));
  EXPECT_FALSE(IsValidName("_leading"));
  EXPECT_FALSE(IsValidName(""));
  EXPECT_FALSE(IsValidName(std::string(256, 'a')));
}

TEST(IsoTime, PrintsUtcWithMicroseconds) {
  EXPECT_EQ(IsoTime(1700000000123), "2023-11-14T22:13:20.123000+00:00");
}

TEST(ReplaceAll, ReplacesEveryOccurrenceAndNeverWhatItPutIn) {
  EXPECT_EQ(ReplaceAll("a/${{name}}/b/${{name}}", "${{name}}", "job"), "a/job/b/job");
  EXPECT_EQ(ReplaceAll("xx", "x", "xx"), "xxxx");
  EXPECT_EQ(ReplaceAll("abc", "", "z"), "abc");
}

}  // namespace
}  // namespace cairn
