#include "spec/placeholders.h"

#include <gtest/gtest.h>

namespace cairn::spec {
namespace {

TEST(FindPlaceholders, FindsEachWithContextAndName) {
  auto p = FindPlaceholders("python t.py --a ${{inputs.a}} --o ${{ outputs.model }}");
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].context, "inputs");
  EXPECT_EQ(p[0].name, "a");
  EXPECT_EQ(p[1].expression, "outputs.model");
}

TEST(NormalizeLegacyPlaceholders, RewritesPreviewOneOnly) {
  int n = 0;
  EXPECT_EQ(NormalizeLegacyPlaceholders(
                "--x {inputs.x} --y ${{inputs.y}} {a,b} f'{x}' {search_space.lr}", &n),
            "--x ${{inputs.x}} --y ${{inputs.y}} {a,b} f'{x}' ${{search_space.lr}}");
  EXPECT_EQ(n, 2);
}

TEST(Substitute, DropsOptionalFragmentsWhoseInputIsAbsent) {
  auto lookup = [](const std::string& ctx, const std::string& name) -> std::optional<std::string> {
    if (ctx == "inputs" && name == "a") return "1";
    return std::nullopt;
  };
  auto r =
      Substitute("run --a ${{inputs.a}} $[[--b ${{inputs.b}}]] $[[--c ${{inputs.a}}]]", lookup);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, "run --a 1  --c 1");
}

TEST(Substitute, AMissingValueOutsideAFragmentIsAnError) {
  auto r = Substitute("run ${{inputs.b}}",
                      [](const std::string&, const std::string&) -> std::optional<std::string> {
                        return std::nullopt;
                      });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "${{inputs.b}} has no value");
}

}  // namespace
}  // namespace cairn::spec
