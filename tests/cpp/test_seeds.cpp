#include <gtest/gtest.h>

#include "autoguide/error.hpp"
#include "autoguide/seeds.hpp"

using namespace autoguide;

TEST(SeedList, ParsesRangesAndSingles) {
  EXPECT_EQ(parse_seed_list("1,2,5-8"), (std::vector<int64_t>{1, 2, 5, 6, 7, 8}));
  EXPECT_EQ(parse_seed_list("0-3"), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(parse_seed_list("42"), (std::vector<int64_t>{42}));
  EXPECT_EQ(parse_seed_list("7-7"), (std::vector<int64_t>{7}));
}

TEST(SeedList, RefusesMalformedLists) {
  for (const char* bad : {"", "5-3", "a", "-1", "1,,2", "1-", "3.5", "1,2,"}) {
    EXPECT_THROW(parse_seed_list(bad), UsageError) << "'" << bad << "'";
  }
}

TEST(SeedGenerators, StreamsDoNotDependOnBatchComposition) {
  SeedGenerators a({3, 9}, torch::kCPU), b({9}, torch::kCPU);
  auto na = a.randn({2, 4, 4});
  auto nb = b.randn({2, 4, 4});
  EXPECT_TRUE(torch::equal(na[1], nb[0]));
}

TEST(SeedGenerators, SeedIsTakenModulo2To32) {
  SeedGenerators a({5}, torch::kCPU), b({(int64_t(1) << 32) + 5}, torch::kCPU);
  EXPECT_TRUE(torch::equal(a.randn({8}), b.randn({8})));
}

TEST(NoiseAndLabels, ClassIsDrawnEvenWhenOverridden) {
  SeedGenerators a({11}, torch::kCPU), b({11}, torch::kCPU);
  auto ra = draw_noise_and_labels(a, 1, 4, 10, -1);
  auto rb = draw_noise_and_labels(b, 1, 4, 10, 7);
  EXPECT_TRUE(torch::equal(ra.noise, rb.noise));
  EXPECT_EQ(rb.classes[0].item<int64_t>(), 7);
  EXPECT_EQ(rb.labels[0][7].item<float>(), 1.0f);
  EXPECT_EQ(rb.labels.sum().item<float>(), 1.0f);
  // Both consumed the class draw, so the churn streams that follow stay aligned.
  EXPECT_TRUE(torch::equal(a.randn({3}), b.randn({3})));
}
