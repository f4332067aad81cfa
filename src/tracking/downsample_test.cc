#include "tracking/downsample.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace cairn::tracking {
namespace {

std::vector<Point> Series(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> noise(0, 1);
  std::vector<Point> p(n);
  for (size_t i = 0; i < n; ++i)
    p[i] = {static_cast<long long>(i), 1000 + static_cast<long long>(i) * 10,
            std::sin(static_cast<double>(i) / 5000.0) + 0.1 * noise(rng)};
  return p;
}

TEST(DownsampleTest, KeepsEveryExtremeOfEveryColumn) {
  auto p = Series(1000000, 1);
  p[123457].value = 50;   // a spike one point wide
  p[765432].value = -50;  // and a dip
  auto keep = MinMaxDownsample(p, 2000, XAxis::kStep);
  ASSERT_LE(keep.size(), 2000u);
  ASSERT_GE(keep.size(), 1000u);
  EXPECT_TRUE(std::is_sorted(keep.begin(), keep.end()));
  EXPECT_EQ(keep.front(), 0u);
  EXPECT_EQ(keep.back(), p.size() - 1);
  EXPECT_NE(std::find(keep.begin(), keep.end(), 123457u), keep.end());
  EXPECT_NE(std::find(keep.begin(), keep.end(), 765432u), keep.end());
  // Check against a brute force: each column's min and max are kept.
  size_t columns = (2000 - 2) / 2;
  double width = static_cast<double>(p.size() - 1) / static_cast<double>(columns);
  std::vector<double> lo(columns, 1e300), hi(columns, -1e300);
  for (size_t i = 1; i + 1 < p.size(); ++i) {
    size_t c = std::min(columns - 1, static_cast<size_t>(static_cast<double>(i) / width));
    lo[c] = std::min(lo[c], p[i].value);
    hi[c] = std::max(hi[c], p[i].value);
  }
  std::vector<double> klo(columns, 1e300), khi(columns, -1e300);
  for (size_t k : keep) {
    if (k == 0 || k == p.size() - 1) continue;
    size_t c = std::min(columns - 1, static_cast<size_t>(static_cast<double>(k) / width));
    klo[c] = std::min(klo[c], p[k].value);
    khi[c] = std::max(khi[c], p[k].value);
  }
  EXPECT_EQ(lo, klo);
  EXPECT_EQ(hi, khi);
}

TEST(DownsampleTest, SmallSeriesAndOddInputs) {
  auto p = Series(10, 2);
  EXPECT_EQ(MinMaxDownsample(p, 100, XAxis::kStep).size(), 10u);
  EXPECT_EQ(MinMaxDownsample(p, 2, XAxis::kStep).size(), 10u);  // too few to mean anything: all
  EXPECT_TRUE(MinMaxDownsample({}, 100, XAxis::kStep).empty());
  // All at one step (timestamps apart): by step there is one column; by time, many.
  std::vector<Point> same(1000);
  for (size_t i = 0; i < same.size(); ++i)
    same[i] = {7, static_cast<long long>(i), static_cast<double>(i % 13)};
  EXPECT_LE(MinMaxDownsample(same, 100, XAxis::kStep).size(), 4u);
  EXPECT_GT(MinMaxDownsample(same, 100, XAxis::kTimestamp).size(), 50u);
  // NaN never hides a number, and a column of NaN stays visible as one NaN.
  std::vector<Point> nan(1000);
  for (size_t i = 0; i < nan.size(); ++i)
    nan[i] = {static_cast<long long>(i), 0, i < 500 ? NAN : 1.0};
  auto keep = MinMaxDownsample(nan, 20, XAxis::kStep);
  size_t nans = 0, ones = 0;
  for (size_t k : keep) (std::isnan(nan[k].value) ? nans : ones)++;
  EXPECT_GE(nans, 4u);
  EXPECT_GE(ones, 4u);
}

}  // namespace
}  // namespace cairn::tracking
