// The progress text shared by the live line and the log lines, when a log gets a line, and the stop request.
#include <gtest/gtest.h>

#include <cmath>
#include <csignal>
#include <limits>

#include "progress_text.hpp"
#include "autoguide/stop.hpp"

using namespace autoguide;

TEST(Progress, FormatsSecondsAsHoursMinutesSeconds) {
  EXPECT_EQ(format_hms(0), "0:00:00");
  EXPECT_EQ(format_hms(59.4), "0:00:59");
  EXPECT_EQ(format_hms(59.6), "0:01:00");
  EXPECT_EQ(format_hms(3723), "1:02:03");
  EXPECT_EQ(format_hms(100 * 3600 + 5), "100:00:05");
  EXPECT_EQ(format_hms(-1), "-:--:--");
  EXPECT_EQ(format_hms(std::nan("")), "-:--:--");
  EXPECT_EQ(format_hms(std::numeric_limits<double>::infinity()), "-:--:--");
}

TEST(Progress, LineHasShareElapsedRateAndEta) {
  // 10 of 40 images in 20 s: 25%, 0.5 images/s, 60 s left.
  EXPECT_EQ(progress_text("image 10/40", 0.25, 10, 20), "image 10/40  25%  elapsed 0:00:20  0.5 images/s  ETA 0:01:00");
  // The share is rounded down: 99.9% is not done.
  EXPECT_EQ(progress_text("x", 0.999, 999, 999), "x  99%  elapsed 0:16:39  1 images/s  ETA 0:00:01");
  EXPECT_EQ(progress_text("y", 0.29, 29, 29), "y  29%  elapsed 0:00:29  1 images/s  ETA 0:01:11");
  EXPECT_EQ(progress_text("", 1, 4000, 8), "100%  elapsed 0:00:08  500 images/s  ETA 0:00:00");
  // Nothing done yet: no rate, no estimate.
  EXPECT_EQ(progress_text("image 0/8", 0, 0, 3), "image 0/8  0%  elapsed 0:00:03  0 images/s  ETA -:--:--");
  EXPECT_EQ(progress_text("image 0/8", 0, 0, 0), "image 0/8  0%  elapsed 0:00:00  0 images/s  ETA -:--:--");
  // Long jobs: hours in the estimate.
  EXPECT_EQ(progress_text("a", 0.1, 5, 3600), "a  10%  elapsed 1:00:00  0.00139 images/s  ETA 9:00:00");
}

TEST(Progress, LogLineEveryFivePercent) {
  ProgressPacer pacer(60);
  EXPECT_FALSE(pacer.due(0, 0));
  EXPECT_FALSE(pacer.due(0.049, 1));
  EXPECT_TRUE(pacer.due(0.05, 2));
  EXPECT_FALSE(pacer.due(0.05, 2.5));  // once per step
  EXPECT_FALSE(pacer.due(0.09, 3));
  EXPECT_TRUE(pacer.due(0.23, 4));  // a jump over several steps is one line
  EXPECT_FALSE(pacer.due(0.24, 5));
  EXPECT_TRUE(pacer.due(0.25, 6));
  int lines = 0;
  for (int k = 0; k <= 1000; ++k) lines += pacer.due(0.25 + 0.75 * k / 1000.0, 6 + k * 0.001);
  EXPECT_EQ(lines, 15);  // 30%, 35%, ..., 100%
  EXPECT_FALSE(pacer.due(1, 7));
}

TEST(Progress, LogLineEveryPeriodWhenSlow) {
  ProgressPacer pacer(60);
  EXPECT_FALSE(pacer.due(0.001, 59.9));
  EXPECT_TRUE(pacer.due(0.002, 60));
  EXPECT_FALSE(pacer.due(0.003, 119));
  EXPECT_TRUE(pacer.due(0.003, 120));  // a stalled job still shows it is alive
  EXPECT_TRUE(pacer.due(0.05, 121));   // a step passed: due at once, and the period starts again
  EXPECT_FALSE(pacer.due(0.06, 180));
  EXPECT_TRUE(pacer.due(0.06, 181));

  ProgressPacer fast(0.5);  // the period is a parameter: a short one for a test
  EXPECT_TRUE(fast.due(0, 0.5));
  EXPECT_FALSE(fast.due(0, 0.9));
  EXPECT_TRUE(fast.due(0, 1.0));
}

TEST(Stop, RequestIsKeptUntilClearedAndThrownBetweenBatches) {
  clear_stop();
  EXPECT_FALSE(stop_requested());
  EXPECT_NO_THROW(throw_if_stop_requested());
  request_stop(SIGTERM);
  request_stop(SIGINT);  // the first request is the one reported
  EXPECT_TRUE(stop_requested());
  EXPECT_EQ(stop_signal(), SIGTERM);
  try {
    throw_if_stop_requested();
    FAIL() << "no Interrupted thrown";
  } catch (const Interrupted& e) {
    EXPECT_EQ(e.signal(), SIGTERM);
    EXPECT_STREQ(e.what(), "interrupted by SIGTERM");
  }
  clear_stop();
  EXPECT_FALSE(stop_requested());
  EXPECT_EQ(signal_name(SIGINT), "SIGINT");
}
