#include "autoguide/distributed.hpp"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef AUTOGUIDE_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef AUTOGUIDE_HAVE_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#ifdef C10_USE_GLOG
#include <glog/logging.h>
#endif

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <thread>

#include "autoguide/error.hpp"
#include "autoguide/format.hpp"

namespace autoguide {

namespace {

// c10d's messages start with "[c10d] "; ours are one line.
std::string c10d_line(const std::string& s) {
  std::string line = first_line(s);
  if (line.rfind("[c10d] ", 0) == 0) line = line.substr(7);
  return line;
}

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }


std::string format_seconds(milliseconds t) {
  char s[32];
  std::snprintf(s, sizeof s, "%g s", static_cast<double>(t.count()) / 1000);
  return s;
}

std::vector<uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }
std::string text(const std::vector<uint8_t>& b) { return {b.begin(), b.end()}; }

// c10d logs connection retries and timeouts itself, on stderr, in several lines; the CLI says what went
// wrong in one.
void quiet_c10d_logs() {
#ifdef C10_USE_GLOG
  FLAGS_minloglevel = google::GLOG_FATAL;
#else
  c10::FLAGS_caffe2_log_level = 3;
#endif
}

#ifdef AUTOGUIDE_HAVE_GLOO
bool is_loopback(const std::string& addr) { return addr.rfind("127.", 0) == 0 || addr == "localhost" || addr == "::1"; }

// The address the other ranks reach this one at: GLOO_SOCKET_IFNAME's, loopback for a one-machine job,
// else the host name's.
std::shared_ptr<::gloo::transport::Device> gloo_device(const Launch& l) {
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME")) return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  if (is_loopback(l.addr)) return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  return c10d::ProcessGroupGloo::createDefaultDevice();
}
#endif

}  // namespace

// Named (not anonymous) because Group::Impl, which has external linkage, holds them.
namespace group_parts {

// A failure as the store holds it: "U message" (bad usage, exit 2) or "R message" (exit 1).
struct Failure {
  bool usage = false;
  std::string message;
  std::string encode() const { return (usage ? "U " : "R ") + message; }
  static Failure decode(const std::string& s) { return {s.rfind("U ", 0) == 0, s.size() > 2 ? s.substr(2) : s}; }
  [[noreturn]] void raise() const {
    if (usage) throw UsageError(message);
    // A lost rank is fixed by running again from what was finished ("resume": the run's resume field).
    throw FieldFailure({"resume"}, message);
  }
};

// The two backends differ in base class between LibTorch 1.x (ProcessGroup) and 2.x (Backend) but share
// these calls; each is held by its concrete type.
struct Collectives {
  virtual ~Collectives() = default;
  virtual void all_reduce(std::vector<at::Tensor>& t) = 0;
  virtual void all_gather(std::vector<std::vector<at::Tensor>>& out, std::vector<at::Tensor>& in) = 0;
};

template <class PG>
struct CollectivesOf : Collectives {
  explicit CollectivesOf(c10::intrusive_ptr<PG> pg) : pg(std::move(pg)) {}
  void all_reduce(std::vector<at::Tensor>& t) override { pg->allreduce(t)->wait(); }
  void all_gather(std::vector<std::vector<at::Tensor>>& out, std::vector<at::Tensor>& in) override {
    pg->allgather(out, in)->wait();
  }
  c10::intrusive_ptr<PG> pg;
};

}  // namespace group_parts

using group_parts::Collectives;
using group_parts::CollectivesOf;
using group_parts::Failure;

struct Group::Impl {
  Launch launch;
  milliseconds timeout;
  c10::intrusive_ptr<c10d::Store> store;
  bool hosts_store = false;
  torch::Device device{torch::kCPU};
  std::unique_ptr<Collectives> collectives;
  int64_t sequence = 0;  // barriers and exchanges happen in the same order on every rank: their keys
  GroupTimes times;

  mutable std::mutex mutex;
  std::optional<Failure> failure;  // the first one noticed
  std::set<int> dead;
  std::atomic<double> own_progress{0}, others_progress{0};

  std::thread watchdog;
  std::mutex stop_mutex;
  std::condition_variable stop_cv;
  bool stop = false;

  std::string where() const { return launch.addr + ":" + std::to_string(launch.port); }
  std::string next_key(const std::string& kind) { return kind + "/" + std::to_string(sequence++); }

  void connect();
  void join();
  void watch();
  void beat(int64_t n);
  void watch_ranks(std::map<int, std::pair<std::string, Clock::time_point>>& last);
  void record(const Failure& f);
  void publish(const Failure& f);
  bool poll_store_failure();
  void check() const;
  void barrier(const std::function<void()>& while_waiting);
  Collectives& backend();
  template <class F>
  void collective(const char* what, F&& run);
  void leave();
};

void Group::Impl::connect() {
  c10d::TCPStoreOptions o;
  o.port = static_cast<uint16_t>(launch.port);
  hosts_store = launch.rank == 0 && !launch.launcher_hosts_store;
  o.isServer = hosts_store;
  o.waitWorkers = false;  // join() waits, and says who is missing
  o.timeout = timeout;
  c10::intrusive_ptr<c10d::Store> tcp;
  try {
    tcp = c10::make_intrusive<c10d::TCPStore>(launch.addr, o);
  } catch (const std::exception& e) {
    if (hosts_store)
      throw UsageError("cannot host the rendezvous on port " + std::to_string(launch.port) + " (" + c10d_line(e.what()) +
                       "); set MASTER_PORT to a free port");
    throw UsageError("nobody answers at " + where() + " (MASTER_ADDR:MASTER_PORT) within " + format_seconds(timeout) +
                     ": start rank 0 there, or point MASTER_ADDR and MASTER_PORT at it");
  }
  store = c10::make_intrusive<c10d::PrefixStore>(launch.key_prefix, tcp);
}

void Group::Impl::join() {
  beat(0);  // before joining, so that rank 0 finds every rank's heartbeat once all joined
  store->add("join", 1);
  const auto deadline = Clock::now() + timeout;
  for (int64_t joined; (joined = store->add("join", 0)) < launch.world;) {
    if (Clock::now() > deadline)
      throw UsageError("only " + std::to_string(joined) + " of " + std::to_string(launch.world) +
                       " ranks met at " + where() + " within " + format_seconds(timeout) +
                       "; start every rank with the same MASTER_ADDR and MASTER_PORT");
    std::this_thread::sleep_for(milliseconds(5));
  }
}

void Group::Impl::beat(int64_t n) {
  store->set("beat/" + std::to_string(launch.rank), bytes(std::to_string(n) + " " + std::to_string(own_progress.load())));
}

// Heartbeats: every rank writes its counter (and progress) each period; rank 0 watches every rank and the
// others watch rank 0. A counter that stands still for the timeout is a dead rank, which rank 0 publishes
// as the job's failure; a rank that fails publishes its own.
void Group::Impl::watch() {
  const auto period = std::clamp(timeout / 10, milliseconds(20), milliseconds(2000));
  std::map<int, std::pair<std::string, Clock::time_point>> last;
  for (int64_t n = 1;; ++n) {
    {
      std::unique_lock<std::mutex> lock(stop_mutex);
      if (stop_cv.wait_for(lock, period, [&] { return stop; })) return;
    }
    try {
      beat(n);
      if (poll_store_failure()) continue;
      watch_ranks(last);
    } catch (const std::exception& e) {
      record({false, "lost the rendezvous at " + where() + " (" + c10d_line(e.what()) +
                         "): rank 0 or the launcher has ended; rerun the same command with resume"});
    }
  }
}

void Group::Impl::watch_ranks(std::map<int, std::pair<std::string, Clock::time_point>>& last) {
  double others = 0;
  for (int r = 0; r < launch.world; ++r) {
    if (r == launch.rank || (launch.rank != 0 && r != 0)) continue;
    const std::string value = text(store->get("beat/" + std::to_string(r)));
    if (value.rfind("left", 0) == 0) continue;  // finished: it beats no more
    auto it = last.find(r);
    if (it == last.end() || it->second.first != value) {
      last[r] = {value, Clock::now()};
    } else if (Clock::now() - it->second.second > timeout) {
      {
        std::lock_guard<std::mutex> lock(mutex);
        dead.insert(r);
      }
      publish({false, "rank " + std::to_string(r) + " stopped responding (no heartbeat for " + format_seconds(timeout) +
                          "; killed, or its machine is gone); rerun the same command with resume"});
    }
    others += std::stod(value.substr(value.find(' ') + 1));
  }
  others_progress = others;
}

void Group::Impl::record(const Failure& f) {
  std::lock_guard<std::mutex> lock(mutex);
  if (!failure) failure = f;
}

void Group::Impl::publish(const Failure& f) {
  // The first failure published is the job's: compareSet only sets a key that does not exist yet.
  const std::string now = text(store->compareSet("failed", {}, bytes(f.encode())));
  record(Failure::decode(now));
}

bool Group::Impl::poll_store_failure() {
  if (!store->check({"failed"})) return false;
  record(Failure::decode(text(store->get("failed"))));
  return true;
}

void Group::Impl::check() const {
  std::lock_guard<std::mutex> lock(mutex);
  if (failure) failure->raise();
}

void Group::Impl::barrier(const std::function<void()>& while_waiting) {
  const auto t0 = Clock::now();
  const std::string key = next_key("barrier");
  try {
    store->add(key, 1);
    for (int ms = 1; store->add(key, 0) < launch.world; ms = std::min(ms * 2, 50)) {
      if (poll_store_failure()) break;
      check();
      if (while_waiting) while_waiting();
      std::this_thread::sleep_for(milliseconds(ms));
    }
    poll_store_failure();  // a rank may have published a failure just before arriving (check_same does)
  } catch (const UsageError&) {
    throw;
  } catch (const RuntimeFailure&) {
    throw;
  } catch (const std::exception& e) {
    record({false, "lost the rendezvous at " + where() + " (" + c10d_line(e.what()) + "): rank 0 or the launcher has ended"});
  }
  check();
  times.waiting += seconds_since(t0);
}

Collectives& Group::Impl::backend() {
  if (collectives) return *collectives;
#ifdef AUTOGUIDE_HAVE_NCCL
  if (device.is_cuda()) {
    auto o = c10d::ProcessGroupNCCL::Options::create();
    o->timeout = timeout;
    auto s = c10::make_intrusive<c10d::PrefixStore>("nccl/", store);
    collectives = std::make_unique<CollectivesOf<c10d::ProcessGroupNCCL>>(
        c10::make_intrusive<c10d::ProcessGroupNCCL>(s, launch.rank, launch.world, o));
    return *collectives;
  }
#endif
#ifdef AUTOGUIDE_HAVE_GLOO
  device = torch::kCPU;
  auto o = c10d::ProcessGroupGloo::Options::create(timeout);
  o->devices.push_back(gloo_device(launch));
  auto s = c10::make_intrusive<c10d::PrefixStore>("gloo/", store);
  collectives = std::make_unique<CollectivesOf<c10d::ProcessGroupGloo>>(
      c10::make_intrusive<c10d::ProcessGroupGloo>(s, launch.rank, launch.world, o));
  return *collectives;
#else
  throw UsageError("this build of autoguide has no c10d backend for " + device.str() +
                   ": rebuild with Gloo (Debian: libgloo-dev) to run several ranks");
#endif
}

// Runs `run` once every rank got here; a failure inside (a rank that died mid-collective) ends this rank.
template <class F>
void Group::Impl::collective(const char* what, F&& run) {
  barrier(nullptr);
  const auto t0 = Clock::now();
  try {
    run();
  } catch (const UsageError&) {
    throw;
  } catch (const std::exception& e) {
    std::this_thread::sleep_for(milliseconds(100));
    poll_store_failure();  // another rank's failure explains this one best
    check();
    throw FieldFailure({"resume"}, std::string(what) + " with the other ranks failed (" + c10d_line(e.what()) +
                                       "); rerun the same command with resume");
  }
  times.collectives += seconds_since(t0);
}

void Group::Impl::leave() {
  if (!hosts_store) {
    store->set("beat/" + std::to_string(launch.rank), bytes("left"));
    store->add("left", 1);
    return;
  }
  // The others may still be reading the store hosted here: wait until they let go, or briefly after a
  // failure (when some of them may never come back).
  bool failed;
  size_t gone;
  {
    std::lock_guard<std::mutex> lock(mutex);
    failed = failure.has_value();
    gone = dead.size();
  }
  const auto deadline = Clock::now() + std::min(timeout, milliseconds(failed ? 2000 : 30000));
  while (store->add("left", 0) < launch.world - 1 - static_cast<int64_t>(gone) && Clock::now() < deadline)
    std::this_thread::sleep_for(milliseconds(5));
}

Group::Group(const Launch& launch, milliseconds timeout) : impl_(std::make_unique<Impl>()) {
  quiet_c10d_logs();
  const auto t0 = Clock::now();
  impl_->launch = launch;
  impl_->timeout = timeout;
  impl_->connect();
  impl_->join();
  impl_->times.rendezvous = seconds_since(t0);
  impl_->watchdog = std::thread([this] { impl_->watch(); });
}

Group::~Group() {
  {
    std::lock_guard<std::mutex> lock(impl_->stop_mutex);
    impl_->stop = true;
  }
  impl_->stop_cv.notify_all();
  impl_->watchdog.join();
  try {
    impl_->leave();
  } catch (const std::exception&) {
    // the store's host is gone: nothing is left to tell
  }
}

const Launch& Group::launch() const { return impl_->launch; }

void Group::check() const { impl_->check(); }

void Group::fail(bool usage_error, const std::string& message) {
  try {
    impl_->publish({usage_error, "rank " + std::to_string(rank()) + " failed: " + first_line(message)});
  } catch (const std::exception&) {
    // the store's host is gone; the others notice that themselves
  }
}

void Group::barrier(const std::function<void()>& while_waiting) { impl_->barrier(while_waiting); }

void Group::check_same(const std::map<std::string, std::string>& items, const std::string& fix) {
  const std::string key = impl_->next_key("same") + "/";
  const nlohmann::json mine(items);
  impl_->store->set(key + std::to_string(rank()), bytes(mine.dump()));
  barrier();
  if (!root()) {
    const auto theirs = nlohmann::json::parse(text(impl_->store->get(key + "0"))).get<std::map<std::string, std::string>>();
    std::set<std::string> names;
    for (const auto* m : {&items, &theirs})
      for (const auto& [name, value] : *m) names.insert(name);
    for (const auto& name : names) {
      auto value_in = [&](const std::map<std::string, std::string>& m) {
        auto it = m.find(name);
        return it == m.end() ? std::string("not given") : "'" + it->second + "'";
      };
      if (value_in(items) == value_in(theirs)) continue;
      impl_->publish({true, "the ranks were started differently: " + name + " is " + value_in(items) + " on rank " +
                                std::to_string(rank()) + " but " + value_in(theirs) + " on rank 0; " + fix});
      break;
    }
  }
  barrier();
}

void Group::set_device(const torch::Device& device) {
  if (!impl_->collectives) impl_->device = device;
}

torch::Tensor Group::all_reduce_sum(const torch::Tensor& t) {
  TORCH_CHECK(t.scalar_type() == torch::kFloat64, "Group::all_reduce_sum takes float64");
  std::vector<at::Tensor> io;
  impl_->collective("summing", [&] {
    Collectives& c = impl_->backend();
    io = {t.to(impl_->device).contiguous().clone()};
    c.all_reduce(io);
  });
  return io[0].cpu();
}

std::vector<torch::Tensor> Group::all_gather(const torch::Tensor& rows) {
  std::vector<torch::Tensor> parts;
  impl_->collective("gathering", [&] {
    Collectives& c = impl_->backend();
    const auto on = torch::TensorOptions().device(impl_->device);
    std::vector<at::Tensor> count = {torch::full({1}, rows.size(0), on.dtype(torch::kInt64))};
    std::vector<std::vector<at::Tensor>> counts(1);
    for (int r = 0; r < world(); ++r) counts[0].push_back(torch::empty({1}, on.dtype(torch::kInt64)));
    c.all_gather(counts, count);
    int64_t most = 0;
    for (const auto& n : counts[0]) most = std::max(most, n.item<int64_t>());
    // Gloo gathers tensors of one shape: pad every rank's rows to the longest.
    auto shape = rows.sizes().vec();
    shape[0] = most;
    std::vector<at::Tensor> padded = {torch::zeros(shape, on.dtype(rows.scalar_type()))};
    padded[0].narrow(0, 0, rows.size(0)).copy_(rows);
    std::vector<std::vector<at::Tensor>> out(1);
    for (int r = 0; r < world(); ++r) out[0].push_back(torch::empty(shape, padded[0].options()));
    if (most > 0) c.all_gather(out, padded);
    for (int r = 0; r < world(); ++r) parts.push_back(out[0][r].narrow(0, 0, counts[0][r].item<int64_t>()).cpu());
  });
  return parts;
}

std::vector<std::string> Group::gather_strings(const std::string& mine) {
  const std::string key = impl_->next_key("gather") + "/";
  impl_->store->set(key + std::to_string(rank()), bytes(mine));
  std::vector<std::string> all;
  impl_->collective("gathering", [&] {
    for (int r = 0; r < world() && root(); ++r) {
      all.push_back(text(impl_->store->get(key + std::to_string(r))));
      impl_->store->deleteKey(key + std::to_string(r));
    }
  });
  return all;
}

std::string Group::broadcast_string(const std::string& root_value) {
  const std::string key = impl_->next_key("broadcast");
  if (root()) impl_->store->set(key, bytes(root_value));
  barrier();
  return root() ? root_value : text(impl_->store->get(key));
}

void Group::set_progress(double images) { impl_->own_progress = images; }

double Group::progress_sum() const {
  return impl_->own_progress.load() + (root() ? impl_->others_progress.load() : 0.0);
}

GroupTimes Group::times() const { return impl_->times; }

torch::Tensor gather_in_order(Group* group, const torch::Tensor& rows, const std::vector<int64_t>& positions,
                              int64_t total) {
  TORCH_CHECK(rows.size(0) == static_cast<int64_t>(positions.size()), "gather_in_order: one position per row");
  const torch::Tensor where = torch::tensor(positions, torch::kInt64);
  std::vector<torch::Tensor> parts = {rows.cpu()}, places = {where};
  if (group) parts = group->all_gather(rows), places = group->all_gather(where);
  if (group && !group->root()) return {};
  auto shape = rows.sizes().vec();
  shape[0] = total;
  torch::Tensor out = torch::empty(shape, rows.options().device(torch::kCPU));
  for (size_t r = 0; r < parts.size(); ++r) out.index_copy_(0, places[r], parts[r]);
  return out;
}

}  // namespace autoguide
