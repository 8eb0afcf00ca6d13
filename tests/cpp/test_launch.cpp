// The launcher's environment -> rank, world, local rank and rendezvous address, for torchrun, srun and mpirun
// spellings; EDM2's rank split by hand-computed examples (the Python test checks it against numpy itself).
#include <gtest/gtest.h>

#include <map>

#include "autoguide/error.hpp"
#include "autoguide/launch.hpp"
#include "autoguide/rank_split.hpp"

using namespace autoguide;

namespace {

Launch launch(const std::map<std::string, std::string>& vars) {
  return read_launch([&](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

std::string usage_error(const std::map<std::string, std::string>& vars) {
  try {
    launch(vars);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

// The launcher's name, rank, world, local rank and rendezvous address, all at once.
void expect_launch(const Launch& l, const std::string& launcher, int rank, int world, int local_rank,
                   const std::string& addr, int port) {
  EXPECT_EQ(l.launcher, launcher);
  EXPECT_EQ(l.rank, rank);
  EXPECT_EQ(l.world, world);
  EXPECT_EQ(l.local_rank, local_rank);
  EXPECT_EQ(l.addr, addr);
  EXPECT_EQ(l.port, port);
}

}  // namespace

TEST(Launch, AloneWithoutALauncher) {
  const Launch l = launch({{"PATH", "/bin"}, {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "4"}});  // an sbatch script
  EXPECT_FALSE(l.distributed());
  EXPECT_EQ(l.world, 1);
  EXPECT_EQ(l.launcher, "");
}

TEST(Launch, Torchrun) {
  const Launch l = launch({{"RANK", "2"}, {"WORLD_SIZE", "3"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "node7"},
                           {"MASTER_PORT", "1234"}, {"TORCHELASTIC_RUN_ID", "abc"},
                           {"TORCHELASTIC_RESTART_COUNT", "2"}, {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                           {"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "5"}});
  expect_launch(l, "torchrun", 2, 3, 1, "node7", 1234);
  EXPECT_TRUE(l.launcher_hosts_store);
  EXPECT_EQ(l.key_prefix, "autoguide/abc/2/");
}

TEST(Launch, ByHandDefaultsToLoopback) {
  const Launch l = launch({{"RANK", "0"}, {"WORLD_SIZE", "2"}});
  expect_launch(l, "env", 0, 2, 0, "127.0.0.1", 29500);
  EXPECT_FALSE(l.launcher_hosts_store);
}

TEST(Launch, OpenMpi) {
  const Launch l = launch({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"},
                           {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}, {"MASTER_PORT", "4321"},
                           {"SLURM_STEP_ID", "0"}, {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}});
  expect_launch(l, "mpirun", 1, 2, 1, "127.0.0.1", 4321);
}

TEST(Launch, SlurmStepFindsRankZerosNode) {
  const Launch l = launch({{"SLURM_STEP_ID", "0"}, {"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "16"},
                           {"SLURM_LOCALID", "1"}, {"SLURM_JOB_ID", "123456"},
                           {"SLURM_JOB_NODELIST", "gpu[01-08]"}, {"SLURM_STEP_NODELIST", "gpu[03-04,07]"}});
  expect_launch(l, "srun", 5, 16, 1, "gpu03", 29500 + 123456 % 2000);
  const Launch given = launch({{"SLURM_STEP_ID", "0"}, {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"},
                               {"SLURM_JOB_NODELIST", "a,b"}, {"MASTER_ADDR", "10.0.0.1"}, {"MASTER_PORT", "7"}});
  EXPECT_EQ(given.addr, "10.0.0.1");
  EXPECT_EQ(given.port, 7);
}

TEST(Launch, FirstSlurmHost) {
  EXPECT_EQ(first_slurm_host("node1"), "node1");
  EXPECT_EQ(first_slurm_host("node1,node2"), "node1");
  EXPECT_EQ(first_slurm_host("gpu[07-09,12],cpu1"), "gpu07");
  EXPECT_EQ(first_slurm_host("gpu[12,07-09]"), "gpu12");
  EXPECT_EQ(first_slurm_host("rack[1-2]-n[3-4]"), "rack1-n3");
  EXPECT_THROW(first_slurm_host("gpu[1-2"), UsageError);
}

TEST(Launch, RefusesHalfSetAndInconsistentVariables) {
  EXPECT_NE(usage_error({{"WORLD_SIZE", "2"}}).find("RANK is not"), std::string::npos);
  EXPECT_NE(usage_error({{"RANK", "0"}}).find("WORLD_SIZE is not"), std::string::npos);
  EXPECT_NE(usage_error({{"RANK", "2"}, {"WORLD_SIZE", "2"}}).find("not below"), std::string::npos);
  EXPECT_NE(usage_error({{"RANK", "x"}, {"WORLD_SIZE", "2"}}).find("RANK=x"), std::string::npos);
  EXPECT_NE(usage_error({{"RANK", "0"}, {"WORLD_SIZE", "0"}}).find("WORLD_SIZE=0"), std::string::npos);
  EXPECT_NE(usage_error({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "70000"}}).find("MASTER_PORT"),
            std::string::npos);
  EXPECT_NE(usage_error({{"OMPI_COMM_WORLD_SIZE", "2"}}).find("OMPI_COMM_WORLD_RANK"), std::string::npos);
}

TEST(RankSplit, Edm2sExampleOfElevenSeedsOverThreeRanks) {
  // 11 seeds, batch 2, 3 ranks: 6 batches of 2,2,2,2,2,1; rank r takes batches r and r + 3.
  EXPECT_EQ(rank_batches(11, 2, {0, 3}), (std::vector<IndexRange>{{0, 2}, {6, 8}}));
  EXPECT_EQ(rank_batches(11, 2, {1, 3}), (std::vector<IndexRange>{{2, 4}, {8, 10}}));
  EXPECT_EQ(rank_batches(11, 2, {2, 3}), (std::vector<IndexRange>{{4, 6}, {10, 11}}));
}

TEST(RankSplit, OneRankIsNumpysArraySplit) {
  // numpy.array_split(arange(10), 3) -> 4,3,3 (ceil(10/4) = 3 batches for max batch 4)
  EXPECT_EQ(rank_batches(10, 4), (std::vector<IndexRange>{{0, 4}, {4, 7}, {7, 10}}));
  EXPECT_EQ(rank_batches(8, 32).size(), 1u);
  EXPECT_EQ(rank_batches(8, 1).size(), 8u);
}

TEST(RankSplit, MoreRanksThanItemsLeavesSomeRanksEmpty) {
  EXPECT_EQ(rank_batches(2, 4, {0, 3}), (std::vector<IndexRange>{{0, 1}}));
  EXPECT_EQ(rank_batches(2, 4, {1, 3}), (std::vector<IndexRange>{{1, 2}}));
  EXPECT_TRUE(rank_batches(2, 4, {2, 3}).empty());
  EXPECT_TRUE(rank_batches(0, 4, {0, 1}).empty());
}
