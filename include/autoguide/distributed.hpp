// The processes of one job meeting through LibTorch's own c10d: a TCPStore rendezvous (hosted by rank 0, or
// by torchrun's agent), a watchdog that notices a rank that failed or died, barriers that wait as long as
// every rank is alive and no longer, and the few collectives the commands need: float64 sums and gathers of
// rows, on Gloo (or NCCL, where the LibTorch build has it and the ranks sample on CUDA).
//
// Every operation that involves all ranks starts with a barrier, so no collective waits on a rank that is
// still sampling: a rank may be hours behind another (a resumed job) and nothing times out, while a rank
// that died is noticed `timeout` after its last heartbeat, wherever the others are.
#pragma once
#include <torch/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "autoguide/launch.hpp"

namespace autoguide {

// Seconds this rank spent meeting the others, waiting for them at barriers, and in collectives.
struct GroupTimes {
  double rendezvous = 0, waiting = 0, collectives = 0;
};

class Group {
 public:
  // Meets the other ranks at launch.addr:port (rank 0 hosts the store unless the launcher does) and waits
  // until all of them joined. Throws UsageError when nobody answers there, the port cannot be hosted, or not
  // every rank joins within `timeout`.
  Group(const Launch& launch, std::chrono::milliseconds timeout);
  ~Group();  // rank 0, when it hosts the store, waits until the others are done with it
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  const Launch& launch() const;
  int rank() const { return launch().rank; }
  int world() const { return launch().world; }
  bool root() const { return rank() == 0; }

  // Throws where another rank failed (UsageError or RuntimeFailure as that rank did, naming it) or stopped
  // responding for the timeout. Costs nothing: call it after every step.
  void check() const;

  // Tells the other ranks that this one failed (the message's first line), so that they stop instead of
  // waiting for it. The first failure of the job is the one every rank reports.
  void fail(bool usage_error, const std::string& message);

  // Waits until every rank got here, calling `while_waiting` between polls; throws as check() does.
  void barrier(const std::function<void()>& while_waiting = nullptr);

  // Compares every rank's `items` with rank 0's; where any differ, every rank throws UsageError naming the
  // first differing item, its values on both ranks, and `fix`.
  void check_same(const std::map<std::string, std::string>& items, const std::string& fix);

  // The device the collectives' tensors live on (NCCL needs the ranks' CUDA devices); the CPU unless set
  // before the first collective.
  void set_device(const torch::Device& device);

  // The element-wise sum over ranks of a float64 tensor of the same shape everywhere; on the CPU.
  torch::Tensor all_reduce_sum(const torch::Tensor& t);
  // Every rank's rows [n_r, ...] (n_r may differ, the rest of the shape and the dtype may not), by rank; on
  // the CPU.
  std::vector<torch::Tensor> all_gather(const torch::Tensor& rows);
  // On rank 0, every rank's string by rank; elsewhere empty.
  std::vector<std::string> gather_strings(const std::string& mine);
  // Rank 0's value, on every rank.
  std::string broadcast_string(const std::string& root_value);

  // This rank's images done so far, published with its heartbeat; on rank 0, the sum over ranks of the
  // latest published (its own counted now).
  void set_progress(double images);
  double progress_sum() const;

  GroupTimes times() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Rows [n, ...] that this rank made for the given positions of a list of `total` items (each position made by
// one rank): on rank 0 every rank's rows in list order [total, ...]; elsewhere undefined. `group` null: one
// process, the rows put in order. Rows of another dtype or trailing shape than the others' are a bug.
torch::Tensor gather_in_order(Group* group, const torch::Tensor& rows, const std::vector<int64_t>& positions,
                              int64_t total);

}  // namespace autoguide
