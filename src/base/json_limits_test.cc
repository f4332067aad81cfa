#include "base/json_limits.h"

#include <gtest/gtest.h>

namespace cairn {
namespace {

TEST(JsonLimits, RefusesDeepNestingBeforeParsing) {
  std::string deep = std::string(100000, '[') + std::string(100000, ']');
  nlohmann::json j;
  std::string error;
  EXPECT_FALSE(ParseJsonBounded(deep, &j, &error));
  EXPECT_EQ(error, "JSON nested deeper than 64 levels");
  EXPECT_TRUE(j.is_discarded());
  std::string ok = std::string(64, '[') + std::string(64, ']');
  EXPECT_TRUE(ParseJsonBounded(ok, &j, &error));
  // Brackets inside strings do not count.
  EXPECT_TRUE(ParseJsonBounded("{\"a\":\"" + std::string(1000, '[') + "\"}", &j, &error));
}

TEST(JsonLimits, RefusesIllFormedUtf8AndOversizedText) {
  nlohmann::json j;
  std::string error;
  EXPECT_FALSE(ParseJsonBounded("{\"k\":\"\xff\"}", &j, &error));
  EXPECT_NE(error.find("ill-formed UTF-8"), std::string::npos) << error;
  EXPECT_FALSE(ParseJsonBounded("[1,2,3]", &j, &error, {.max_depth = 64, .max_bytes = 4}));
  EXPECT_EQ(error, "JSON text of 7 bytes is over the limit of 4");
}

}  // namespace
}  // namespace cairn
