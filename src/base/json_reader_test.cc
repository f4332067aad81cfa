#include "base/json_reader.h"
#include "base/json_writer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <random>

namespace cairn {
namespace {

TEST(JsonReader, ReadsObjectsArraysAndScalars) {
  JsonReader r(
      R"( {"a": [1, -2.5e3, "x\"\u00e9\ud83d\ude00", null, true, false], "b": {"c": 9007199254740993}} )");
  std::string k, s;
  double d;
  long long i;
  ASSERT_TRUE(r.BeginObject());
  ASSERT_TRUE(r.NextKey(&k));
  EXPECT_EQ(k, "a");
  ASSERT_TRUE(r.BeginArray());
  ASSERT_TRUE(r.NextElement());
  ASSERT_TRUE(r.Int(&i));
  EXPECT_EQ(i, 1);
  ASSERT_TRUE(r.NextElement());
  EXPECT_FALSE(JsonReader("-2.5e3").Int(&i));  // not an integer
  ASSERT_TRUE(r.Double(&d));
  EXPECT_EQ(d, -2500);
  ASSERT_TRUE(r.NextElement());
  ASSERT_TRUE(r.String(&s));
  EXPECT_EQ(s, "x\"\xc3\xa9\xf0\x9f\x98\x80");
  for (int n = 0; n < 3; ++n) {
    ASSERT_TRUE(r.NextElement());
    ASSERT_TRUE(r.Skip());
  }
  EXPECT_FALSE(r.NextElement());
  ASSERT_TRUE(r.NextKey(&k));
  EXPECT_EQ(k, "b");
  ASSERT_TRUE(r.BeginObject());
  ASSERT_TRUE(r.NextKey(&k));
  ASSERT_TRUE(r.Int(&i));
  EXPECT_EQ(i, 9007199254740993);  // exact, not through a double
  EXPECT_FALSE(r.NextKey(&k));
  EXPECT_FALSE(r.NextKey(&k));
  EXPECT_TRUE(r.ok());
  EXPECT_TRUE(r.AtEnd());
}

TEST(JsonReader, ReadsNumbersAtTheEdgesAsNlohmannDoes) {
  for (const char* t : {"1e-400", "2.4e-320", "4.9e-324", "1.7976931348623157e308", "-0.0"}) {
    JsonReader r(t);
    double d;
    ASSERT_TRUE(r.Double(&d)) << t;
    EXPECT_EQ(d, nlohmann::json::parse(t).get<double>()) << t;
  }
  double d;
  EXPECT_FALSE(JsonReader("1e400").Double(&d));
  long long i;
  EXPECT_FALSE(JsonReader("9223372036854775808").Int(&i));
}

bool Accepts(const std::string& text) {
  JsonReader r(text);
  return r.Skip() && r.AtEnd();
}

TEST(JsonReader, RefusesWhatJsonRefuses) {
  for (const char* bad :
       {"", "{", "[1,]", "{\"a\":1,}", "{a:1}", "01", "1.", "-", "1e", "\"\\x\"", "\"\t\"",
        "\"\\ud800\"", "\"\\udc00\"", "nul", "[1 2]", "{\"a\" 1}", "1 2"})
    EXPECT_FALSE(Accepts(bad)) << bad;
  std::string deep(300, '[');
  deep += std::string(300, ']');
  EXPECT_FALSE(Accepts(deep));
}

// The reader and nlohmann::json agree on what is JSON, over documents and single-character
// mutations of them.
TEST(JsonReader, AgreesWithNlohmannOnMutatedDocuments) {
  std::mt19937 rng(7);
  auto random_doc = [&](auto&& self, int depth) -> nlohmann::json {
    switch (rng() % (depth > 3 ? 4 : 6)) {
      case 0:
        return static_cast<long long>(rng()) - (1LL << 31);
      case 1:
        return std::ldexp(static_cast<double>(rng()), static_cast<int>(rng() % 80) - 40);
      case 2:
        return std::string(rng() % 6, static_cast<char>('a' + rng() % 26)) + "\n\"\\/";
      case 3:
        return rng() % 2 ? nlohmann::json(nullptr) : nlohmann::json(rng() % 2 == 0);
      case 4: {
        nlohmann::json a = nlohmann::json::array();
        for (unsigned n = rng() % 4; n > 0; --n) a.push_back(self(self, depth + 1));
        return a;
      }
      default: {
        nlohmann::json o = nlohmann::json::object();
        for (unsigned n = rng() % 4; n > 0; --n)
          o["k" + std::to_string(rng() % 10)] = self(self, depth + 1);
        return o;
      }
    }
  };
  const std::string alphabet = "{}[]:,\"\\ 0123456789.eE+-truefalsn/u";
  int agreed = 0;
  for (int n = 0; n < 3000; ++n) {
    std::string text = random_doc(random_doc, 0).dump(rng() % 2 ? -1 : 1);
    ASSERT_TRUE(Accepts(text)) << text;
    for (int m = 0; m < 3; ++m) {
      std::string mutated = text;
      size_t at = rng() % mutated.size();
      switch (rng() % 3) {
        case 0:
          mutated[at] = alphabet[rng() % alphabet.size()];
          break;
        case 1:
          mutated.erase(at, 1);
          break;
        default:
          mutated.insert(at, 1, alphabet[rng() % alphabet.size()]);
          break;
      }
      ASSERT_EQ(Accepts(mutated), nlohmann::json::accept(mutated)) << mutated;
      ++agreed;
    }
  }
  EXPECT_EQ(agreed, 9000);
}

// The hand writer gives the text nlohmann gives, for valid and broken UTF-8 and every control
// character.
TEST(JsonWriter, StringsAreWhatNlohmannWrites) {
  std::mt19937 rng(11);
  const std::vector<std::string> pieces = {
      "a",    "\"",   "\\",           "\n",           "\x01",
      "\x1f", "\x7f", "\xc3\xa9",     "\xe2\x82\xac", "\xf0\x9f\x98\x80",
      "\xc3", "\xff", "\xed\xa0\x80", "\xc0\xaf",     "/",
      " "};
  for (int n = 0; n < 5000; ++n) {
    std::string s;
    for (unsigned k = rng() % 6; k > 0; --k) s += pieces[rng() % pieces.size()];
    std::string mine;
    AppendJsonString(mine, s);
    ASSERT_EQ(mine,
              nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))
        << s;
  }
}

TEST(JsonWriter, NumbersReadBackExactly) {
  std::mt19937_64 rng(5);
  for (int n = 0; n < 10000; ++n) {
    double v = std::ldexp(static_cast<double>(rng() >> 11), static_cast<int>(rng() % 200) - 100) *
               (n % 2 ? -1 : 1);
    std::string out;
    AppendJsonDouble(out, v);
    ASSERT_EQ(nlohmann::json::parse(out).get<double>(), v) << out;
    ASSERT_TRUE(nlohmann::json::parse(out).is_number_float()) << out;
  }
  std::string one;
  AppendJsonDouble(one, 1);
  EXPECT_EQ(one, "1.0");
}

}  // namespace
}  // namespace cairn
