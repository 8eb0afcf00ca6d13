// The FD intervals and FD-inf: against fd_bootstrap.py on identical resamples, analytic cases, and coverage of a
// simulated Gaussian case.
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <filesystem>
#include <iostream>

#include <unistd.h>

#include "autoguide/error.hpp"
#include "autoguide/fd_uncertainty.hpp"
#include "autoguide/feature_store.hpp"
#include "fixtures.hpp"
#include "npy.hpp"

using namespace autoguide;

namespace {

constexpr auto kF64 = torch::kFloat64;

void expect_rel(double got, double want, double tol, const char* what) {
  EXPECT_LE(std::abs(got - want), tol * std::max(std::abs(want), 1e-300)) << what << ": " << got << " vs " << want;
}

at::Generator gen(uint64_t seed) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>();
  g.set_current_seed(seed);
  return g;
}

// The 32-D case of the coverage tests: features N(0, I); the reference N(0.1·1, diag(0.5 .. 2)) given exactly.
constexpr int64_t kDim = 32;
FeatureStats gaussian_ref() {
  return {torch::full({kDim}, 0.1, kF64), torch::diag(torch::linspace(0.5, 2.0, kDim, kF64)), 0};
}
double true_fd_to_gaussian_ref() {  // FD of N(0, I) to the reference: |m|^2 + sum (1 - sqrt(s_i))^2
  const auto s = torch::linspace(0.5, 2.0, kDim, kF64);
  return 0.01 * kDim + (1 - s.sqrt()).square().sum().item<double>();
}
torch::Tensor gaussian_features(int64_t n, uint64_t seed) {
  auto g = gen(seed);
  return at::randn({n, kDim}, g, torch::TensorOptions().dtype(kF64));
}

}  // namespace

TEST(FdUncertainty, NormalZMatchesScipy) {
  // scipy.stats.norm.ppf(0.5 + c/2)
  expect_rel(normal_z(0.5), 0.6744897501960817, 1e-14, "0.5");
  expect_rel(normal_z(0.9), 1.6448536269514722, 1e-14, "0.9");
  expect_rel(normal_z(0.95), 1.959963984540054, 1e-14, "0.95");
  expect_rel(normal_z(0.99), 2.5758293035489004, 1e-14, "0.99");
  expect_rel(normal_z(1 - 1e-9), 6.1094101916632875, 1e-9, "1-1e-9");
  for (double bad : {0.0, 1.0, -0.5, 1.5, std::nan("")}) EXPECT_THROW(normal_z(bad), FieldError) << bad;
}

TEST(FdUncertainty, AgreesWithFdBootstrapPyOnTheSameResamples) {
  if (!std::filesystem::exists(fixture("fd_a.npy"))) GTEST_SKIP() << "no FD fixtures (the fixture Python lacks scipy)";
  const auto a = read_npy(fixture("fd_a.npy")), b = read_npy(fixture("fd_b.npy"));
  const FeatureStats ref{read_npy(fixture("fd_ref_mu.npy")), read_npy(fixture("fd_ref_sigma.npy")), 0};
  const auto rows = read_npy(fixture("fd_rows.npy")).to(torch::kInt64);
  const auto want = read_npy(fixture("fd_expected.npy")).to(kF64);  // value, lo, hi of FD(a), then of FD(a)-FD(b)
  const int64_t n = a.size(0);
  const int resamples = static_cast<int>(rows.size(0));
  std::vector<torch::Tensor> given;
  for (int r = 0; r < resamples; ++r) given.push_back(rows[r]);

  // Our generator draws the rows Python's torch.Generator().manual_seed(7) drew.
  const auto drawn = bootstrap_indices(n, resamples, 7);
  ASSERT_EQ(drawn.size(), given.size());
  for (int r = 0; r < resamples; ++r) EXPECT_TRUE(torch::equal(drawn[r], given[r])) << "resample " << r;

  for (const auto& single : {bootstrap_fd_with_indices(a, ref, given, 0.9), bootstrap_fd(a, ref, resamples, 0.9, 7)}) {
    expect_rel(single.value, want[0].item<double>(), 1e-9, "FD");
    expect_rel(single.lo, want[1].item<double>(), 1e-9, "FD lo");
    expect_rel(single.hi, want[2].item<double>(), 1e-9, "FD hi");
    expect_rel(single.se, (single.hi - single.lo) / 2 / normal_z(0.9), 1e-12, "se");
    EXPECT_EQ(single.resamples, resamples);
    EXPECT_EQ(single.n, n);
  }
  for (const auto& diff : {paired_fd_difference_with_indices(a, b, ref, given, 0.9),
                           paired_fd_difference(a, b, ref, resamples, 0.9, 7)}) {
    expect_rel(diff.value, want[3].item<double>(), 1e-9, "difference");
    expect_rel(diff.lo, want[4].item<double>(), 1e-9, "difference lo");
    expect_rel(diff.hi, want[5].item<double>(), 1e-9, "difference hi");
    expect_rel(diff.fd_a - diff.fd_b, diff.value, 1e-15, "fd_a - fd_b");
    expect_rel(diff.fd_a, want[0].item<double>(), 1e-9, "fd_a");
  }
  std::cout << "[ measured ] FD " << want[0].item<double>() << " in [" << want[1].item<double>() << ", "
            << want[2].item<double>() << "], difference " << want[3].item<double>() << " in ["
            << want[4].item<double>() << ", " << want[5].item<double>() << "] (fd_bootstrap.py)\n";
}

TEST(FdUncertainty, CachedReferenceFdEqualsFrechetDistance) {
  auto x = gaussian_features(200, 3) * 1.3 + 0.2;
  const auto ref = gaussian_ref();
  // One resample that is the identity: its FD is the FD of all rows.
  const auto iv = bootstrap_fd_with_indices(x, ref, {torch::arange(200), torch::arange(200)});
  expect_rel(iv.value, frechet_distance(feature_stats(x), ref), 1e-12, "value");
  expect_rel(iv.value, frechet_distance(ref, feature_stats(x)), 1e-12, "value, arguments swapped");
  EXPECT_EQ(iv.se, 0.0);
}

TEST(FdUncertainty, SameSeedSameNumbers) {
  auto x = gaussian_features(300, 4);
  const auto ref = gaussian_ref();
  const auto one = bootstrap_fd(x, ref, 20, 0.95, 5), two = bootstrap_fd(x, ref, 20, 0.95, 5);
  const auto other = bootstrap_fd(x, ref, 20, 0.95, 6);
  EXPECT_EQ(one.se, two.se);
  EXPECT_EQ(one.lo, two.lo);
  EXPECT_NE(one.se, other.se);
  EXPECT_EQ(one.value, other.value);  // the estimate itself draws nothing
  const auto inf1 = fd_infinity(x.narrow(0, 0, 200), ref, 3, 0.95, 9), inf2 = fd_infinity(x.narrow(0, 0, 200), ref, 3, 0.95, 9);
  EXPECT_EQ(inf1.value, inf2.value);
  EXPECT_EQ(inf1.se, inf2.se);
}

TEST(FdUncertainty, ShiftedCopyGivesTheAnalyticDifference) {
  // a = b + c: only the mean term differs, FD(a) - FD(b) = 2 c·(mu_b - mu_ref) + |c|^2, in every resample too.
  const int64_t n = 300, d = 8;
  auto g = gen(21);
  const auto opts = torch::TensorOptions().dtype(kF64);
  const auto b = at::randn({n, d}, g, opts) * 0.7 + 0.3;
  const auto c = at::randn({d}, g, opts) * 0.2;
  const auto a = b + c;
  const FeatureStats ref{at::randn({d}, g, opts), torch::eye(d, opts) * 1.5, 0};
  auto analytic = [&](const torch::Tensor& rows) {
    const auto mu_b = b.index_select(0, rows).mean(0);
    return (2 * (c * (mu_b - ref.mu)).sum() + c.square().sum()).item<double>();
  };
  const auto rows = bootstrap_indices(n, 50, 3);
  std::vector<double> values;
  for (const auto& r : rows) values.push_back(analytic(r));
  double mean = 0, ss = 0;
  for (double v : values) mean += v / values.size();
  for (double v : values) ss += (v - mean) * (v - mean);
  const double se = std::sqrt(ss / (values.size() - 1));

  const auto diff = paired_fd_difference(a, b, ref, 50, 0.95, 3);
  expect_rel(diff.value, analytic(torch::arange(n)), 1e-9, "difference");
  expect_rel(diff.se, se, 1e-7, "se");
  expect_rel(diff.hi - diff.value, normal_z(0.95) * se, 1e-7, "half width");
  // Unpaired, each FD alone moves far more than their difference does.
  EXPECT_GT(bootstrap_fd(a, ref, 50, 0.95, 3).se, 3 * diff.se);
}

TEST(FdUncertainty, RefusesBadInput) {
  const auto ref = gaussian_ref();
  const auto x = gaussian_features(50, 1);
  EXPECT_THROW(bootstrap_fd(x.narrow(0, 0, 1), ref), UsageError);
  EXPECT_THROW(bootstrap_fd(x.narrow(1, 0, 5), ref), UsageError);  // dimension differs
  EXPECT_THROW(bootstrap_fd(x, ref, 1), FieldError);
  EXPECT_THROW(bootstrap_fd(x, ref, 10, 1.0), FieldError);
  EXPECT_THROW(paired_fd_difference(x, x.narrow(0, 0, 40), ref), UsageError);
  EXPECT_THROW(bootstrap_fd_with_indices(x, ref, {torch::arange(50), torch::arange(50) + 1}), UsageError);
  EXPECT_THROW(bootstrap_fd_with_indices(x, ref, {torch::arange(50), torch::arange(49)}), UsageError);
  EXPECT_THROW(fd_infinity(x.narrow(0, 0, 19), ref, 2), UsageError);
  EXPECT_NO_THROW(fd_infinity(x.narrow(0, 0, 20), ref, 2));
  EXPECT_THROW(fit_fd_line({100, 100}, {1, 2}), UsageError);
  EXPECT_THROW(fit_fd_line({100}, {1}), UsageError);
  EXPECT_THROW(fit_fd_line({100, 200}, {1}), UsageError);
}

TEST(FdUncertainty, NormalIntervalCoversTheExpectedFd) {
  // 32-D Gaussian features, N = 500, 200 resamples: the expected FD at N = 500 (biased above the true FD) by
  // Monte Carlo over 400 independent sets, then 30 seeded trials.
  const int64_t n = 500;
  const auto ref = gaussian_ref();
  const auto start = std::chrono::steady_clock::now();
  double expected = 0;
  const int sets = 400;
  for (int s = 0; s < sets; ++s) expected += frechet_distance(feature_stats(gaussian_features(n, 1000 + s)), ref) / sets;
  int covered = 0;
  double se_sum = 0;
  for (int t = 0; t < 30; ++t) {
    const auto iv = bootstrap_fd(gaussian_features(n, t), ref, 200, 0.95, t);
    covered += iv.lo <= expected && expected <= iv.hi;
    se_sum += iv.se;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "[ measured ] expected FD at N=500 " << expected << " (true FD " << true_fd_to_gaussian_ref()
            << "), mean se " << se_sum / 30 << ", covered in " << covered << " of 30 trials, " << seconds << " s\n";
  EXPECT_GE(covered, 27);
}

TEST(FdUncertainty, FitFdLineRecoversAnExactLine) {
  const auto sizes = fd_infinity_sizes(50000);
  const std::vector<int64_t> want{5000,  8214,  11428, 14642, 17857, 21071, 24285, 27500,
                                  30714, 33928, 37142, 40357, 43571, 46785, 50000};  // np.linspace(...).astype(int)
  EXPECT_EQ(sizes, want);
  const std::vector<int64_t> small{2, 3, 4, 5, 7, 8, 9, 11, 12, 13, 14, 16, 17, 18, 20};
  EXPECT_EQ(fd_infinity_sizes(20), small);
  std::vector<double> xs, fds;
  for (auto s : sizes) {
    xs.push_back(static_cast<double>(s));
    fds.push_back(3.25 + 1234.5 / static_cast<double>(s));
  }
  const auto line = fit_fd_line(xs, fds);
  expect_rel(line.intercept, 3.25, 1e-10, "intercept");
  expect_rel(line.slope, 1234.5, 1e-10, "slope");
}

TEST(FdUncertainty, FdInfinityLandsCloserToTheTrueFd) {
  // N = 2000 of 32-D Gaussian features against a Gaussian reference whose true FD is known; 5 seeds, and only
  // 10 resamples each (the interval is not what is tested here; it keeps the test short).
  const auto ref = gaussian_ref();
  const double truth = true_fd_to_gaussian_ref();
  int closer = 0;
  for (uint64_t seed = 0; seed < 5; ++seed) {
    const auto x = gaussian_features(2000, 500 + seed);
    const auto inf = fd_infinity(x, ref, 10, 0.95, seed);
    const double fd_n = inf.fds.back();
    expect_rel(fd_n, frechet_distance(feature_stats(x), ref), 1e-12, "the last size is all rows");
    EXPECT_EQ(inf.sizes.front(), 200);
    EXPECT_EQ(inf.sizes.back(), 2000);
    EXPECT_GT(inf.k, 0);  // the FD falls with N
    EXPECT_GT(inf.se, 0);
    closer += std::abs(inf.value - truth) < std::abs(fd_n - truth);
    std::cout << "[ measured ] seed " << seed << ": true FD " << truth << ", FD at N=2000 " << fd_n << ", FD-inf "
              << inf.value << " in [" << inf.lo << ", " << inf.hi << "], k " << inf.k << "\n";
  }
  EXPECT_GE(closer, 4);
}

TEST(FdUncertainty, FdInfinityIntervalCoversTheTrueFd) {
  // FD-inf estimates the FD at infinitely many images, so its interval should cover the true FD, which the
  // interval of the FD at N misses (bias k/N; 1 of 20 covered in a trial run). 12 trials, N = 2000, 30 resamples
  // each (fewer than the default 200 to keep the test under 10 s); a trial run of 20 trials with 40 covered 20.
  const auto ref = gaussian_ref();
  const double truth = true_fd_to_gaussian_ref();
  int covered = 0;
  for (uint64_t t = 0; t < 12; ++t) {
    const auto inf = fd_infinity(gaussian_features(2000, 900 + t), ref, 30, 0.95, t);
    covered += inf.lo <= truth && truth <= inf.hi;
  }
  std::cout << "[ measured ] FD-inf interval covered the true FD " << truth << " in " << covered << " of 12 trials\n";
  EXPECT_GE(covered, 10);
}

TEST(FdUncertainty, EstimateIsTheBootstrapAndAddsFdInfinityFrom1000Images) {
  const auto ref = gaussian_ref();
  const auto x = gaussian_features(1000, 8);
  FdSettings s;
  s.resamples = 3, s.seed = 4;
  const FdEstimate small = estimate_fd(x.narrow(0, 0, 999), ref, s);
  EXPECT_FALSE(small.infinity.has_value());
  const FdInterval direct = bootstrap_fd(x.narrow(0, 0, 999), ref, 3, 0.95, 4);
  EXPECT_EQ(small.fd.value, direct.value);
  EXPECT_EQ(small.fd.se, direct.se);
  const FdEstimate big = estimate_fd(x, ref, s);
  ASSERT_TRUE(big.infinity.has_value());
  EXPECT_EQ(big.infinity->value, fd_infinity(x, ref, 3, 0.95, 4).value);
  // Without resamples: the same values, no interval, and FD-inf's line alone.
  s.resamples = 0;
  const FdEstimate plain = estimate_fd(x, ref, s);
  EXPECT_EQ(plain.fd.value, big.fd.value);
  EXPECT_TRUE(std::isnan(plain.fd.lo) && std::isnan(plain.fd.hi) && std::isnan(plain.fd.se));
  EXPECT_EQ(plain.fd.resamples, 0);
  ASSERT_TRUE(plain.infinity.has_value());
  EXPECT_EQ(plain.infinity->value, big.infinity->value);
  EXPECT_TRUE(std::isnan(plain.infinity->lo));
  s.resamples = 1;
  EXPECT_THROW(estimate_fd(x, ref, s), FieldError);
  s.resamples = 5, s.confidence = 1;
  EXPECT_THROW(estimate_fd(x, ref, s), FieldError);
}

TEST(FdUncertainty, VerdictsFollowTheInterval) {
  // a = b + 1 on one feature, reference N(0, 1): only the mean term differs, FD(a) - FD(b) = 2·mean(b) + 1 = 3,
  // and a resample's difference moves with its mean only (by about 2 × 0.3/√30).
  const auto b = torch::linspace(0.5, 1.5, 30, kF64).reshape({30, 1});
  const FeatureStats ref{torch::zeros({1}, kF64), torch::ones({1, 1}, kF64), 0};
  FdSettings s;
  s.resamples = 50;
  const FdDifference d = fd_difference(b + 1, b, ref, s);
  expect_rel(d.value, 3, 1e-12, "FD(b + 1) - FD(b)");
  EXPECT_EQ(verdict(d), Verdict::SecondBetter);  // b is closer to the reference: the whole interval lies above 0
  FdDifference flipped = d;
  flipped.value = -d.value, flipped.lo = -d.hi, flipped.hi = -d.lo;
  EXPECT_EQ(verdict(flipped), Verdict::FirstBetter);
  FdDifference straddles = d;
  straddles.lo = -0.1;
  EXPECT_EQ(verdict(straddles), Verdict::Unresolved);
  s.resamples = 0;  // no interval: never resolved
  EXPECT_EQ(verdict(fd_difference(b + 1, b, ref, s)), Verdict::Unresolved);
}

TEST(FeatureStore, KeepsWithinTheBudgetAndSpillsBeyondIt) {
  const auto dir = std::filesystem::temp_directory_path() / ("feature_store_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  const auto a = gaussian_features(10, 1).to(torch::kFloat32), b = gaussian_features(20, 2).to(torch::kFloat32);
  FeatureStore store(dir.string(), a.nbytes());  // room for a, not for b as well
  store.put("a", a);
  store.put("b", b);
  EXPECT_EQ(store.file("a"), "");
  EXPECT_EQ(store.file("b"), (dir / "b.npy").string());
  EXPECT_EQ(store.bytes_in_memory(), static_cast<int64_t>(a.nbytes()));
  EXPECT_TRUE(torch::equal(store.get("a"), a));
  EXPECT_TRUE(torch::equal(store.get("b"), b));
  EXPECT_TRUE(torch::equal(read_npy(store.file("b")), b));
  store.put("a", b.narrow(0, 0, 5));  // replacing frees the old entry's memory
  EXPECT_EQ(store.bytes_in_memory(), static_cast<int64_t>(b.narrow(0, 0, 5).nbytes()));
  EXPECT_THROW(store.get("c"), UsageError);
  std::filesystem::remove_all(dir);
}
