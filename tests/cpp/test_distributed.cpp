// The c10d group with its ranks as threads of one process: statistics merged across ranks against the
// statistics of the whole set, rows gathered in list order, and a rank whose items differ stopping every rank.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <thread>

#include "autoguide/distributed.hpp"
#include "autoguide/error.hpp"
#include "rank_stats.hpp"

using namespace autoguide;

namespace {

// A port nobody listens on now: the kernel's choice for a socket bound to port 0.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// Runs body(group) on `world` threads, one rank each.
void on_ranks(int world, const std::function<void(Group&)>& body) {
  const int port = free_port();
  std::vector<std::thread> threads;
  std::vector<std::exception_ptr> errors(static_cast<size_t>(world));
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      try {
        Launch l;
        l.launcher = "env", l.rank = r, l.world = world, l.port = port;
        Group g(l, std::chrono::milliseconds(10000));
        body(g);
      } catch (...) {
        errors[static_cast<size_t>(r)] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace

TEST(Group, MergedStatisticsEqualTheWholeSetsAndRowsComeBackInOrder) {
  const auto features = torch::randn({11, 5}, torch::kFloat64) * 3 + 100;  // a large mean, as Inception's
  const FeatureStats whole = feature_stats(features);
  on_ranks(3, [&](Group& g) {
    // EDM2-like shares: rank r takes rows r, r + 3, ... (rank 2 of 11 rows gets 3, the others 4).
    StatsAccumulator acc;
    std::vector<int64_t> mine;
    for (int64_t i = g.rank(); i < 11; i += 3) mine.push_back(i);
    const auto rows = features.index_select(0, torch::tensor(mine));
    for (int64_t i = 0; i < rows.size(0); ++i) acc.add(rows.narrow(0, i, 1));
    const FeatureStats merged = merge_stats(&g, acc, 5).finish();
    EXPECT_EQ(merged.num_images, 11);
    EXPECT_LT((merged.mu - whole.mu).abs().max().item<double>(), 1e-12 * 100);
    EXPECT_LT((merged.sigma - whole.sigma).abs().max().item<double>(), 1e-12 * whole.sigma.abs().max().item<double>());
    const torch::Tensor gathered = gather_in_order(&g, rows.to(torch::kFloat32), mine, 11);
    if (g.root()) {
      EXPECT_TRUE(torch::equal(gathered, features.to(torch::kFloat32)));
    } else {
      EXPECT_FALSE(gathered.defined());
    }
  });
}

TEST(Group, ARankWithOtherItemsStopsEveryRankNamingTheItem) {
  std::vector<std::string> messages(2);
  on_ranks(2, [&](Group& g) {
    try {
      g.check_same({{"--steps", g.rank() == 0 ? "32" : "16"}, {"--seeds", "0-7"}}, "start every rank alike");
    } catch (const UsageError& e) {
      messages[static_cast<size_t>(g.rank())] = e.what();
    }
  });
  for (const auto& m : messages)
    EXPECT_EQ(m, "the ranks were started differently: --steps is '16' on rank 1 but '32' on rank 0; start every rank alike");
}

TEST(Group, AFailedRankIsReportedToTheOthers) {
  std::string seen;
  on_ranks(2, [&](Group& g) {
    if (g.rank() == 1) {
      g.fail(false, "disk full\nsecond line");
      return;
    }
    try {
      g.barrier();
    } catch (const RuntimeFailure& e) {
      seen = e.what();
    }
  });
  EXPECT_EQ(seen, "rank 1 failed: disk full");
}
