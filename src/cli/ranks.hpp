// The processes of one command under a launcher (torchrun, srun, mpirun): which rank this one is, the c10d
// group the ranks meet in, and the checks they make together. Started alone, there is one rank and no group,
// and every helper here does what one process always did.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "autoguide/distributed.hpp"
#include "autoguide/launch.hpp"
#include "autoguide/rank_split.hpp"

namespace autoguide::cli {

struct Ranks {
  Launch launch;                 // world 1 when started alone
  std::unique_ptr<Group> group;  // null when started alone

  Shard shard() const { return {launch.rank, launch.world}; }
  bool root() const { return launch.rank == 0; }
  Group* get() const { return group.get(); }
  // The device this rank computes on: the collectives use it where the backend needs it (NCCL).
  void use_device(const torch::Device& device) const;
  // Throws where another rank failed; after every step.
  void check() const;
  // Waits for every rank; `while_waiting` (e.g. rank 0's progress line) runs between polls.
  void barrier(const std::function<void()>& while_waiting = nullptr) const;
  // This rank's images done -> every rank's (rank 0; elsewhere this rank's own).
  double images_done(double own) const;
  // Every rank's `mine`, by rank, on rank 0 (elsewhere empty); alone, {mine}.
  std::vector<nlohmann::json> gather_json(const nlohmann::json& mine) const;
  // For a manifest: this rank and its seconds spent meeting the others, waiting for them and in
  // collectives (an empty object when alone).
  nlohmann::json times() const;
  // For a manifest: the launcher and world size with each rank's entry (gathered `times()` and more), or
  // null when alone.
  nlohmann::json describe(const std::vector<nlohmann::json>& entries) const;
};

// Runs a command as this process's rank: meets the other ranks when a launcher started several, checks that
// every rank was started with the same options (those given to `cmd`), and tells the others when this rank
// fails, so that they stop within the timeout instead of waiting for it.
void run_as_rank(const CLI::App& cmd, double dist_timeout, const std::function<void(Ranks&)>& body);

// Every rank loaded the same files: `files` maps what each is (e.g. "--net models/x.pt") to its SHA-256.
void check_same_files(const Ranks& ranks, const std::map<std::string, std::string>& files);

// Every rank's files in `dir` must reach rank 0 (which merges and measures them): each rank leaves a probe
// file there, rank 0 looks for all of them, and the probes are removed. Throws UsageError on every rank
// naming a rank whose probe rank 0 cannot see.
void check_shared_folder(const Ranks& ranks, const std::string& dir);

}  // namespace autoguide::cli
