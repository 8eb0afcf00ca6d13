#include "ranks.hpp"

#include <unistd.h>

#include <c10/util/Exception.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>

#include "atomic_file.hpp"
#include "autoguide/error.hpp"
#include "options.hpp"
#include "signals.hpp"

namespace fs = std::filesystem;

namespace autoguide::cli {

namespace {

// The options as given (not their defaults, which every rank shares anyway), by their first long name.
std::map<std::string, std::string> given_options(const CLI::App& cmd) {
  std::map<std::string, std::string> given = {{"the command", cmd.get_name()}};
  for (const CLI::Option* opt : cmd.get_options()) {
    if (opt->count() == 0) continue;
    std::string value;
    for (const auto& r : opt->results()) value += (value.empty() ? "" : ",") + r;
    given[opt->get_name()] = value;
  }
  return given;
}

}  // namespace

void Ranks::use_device(const torch::Device& device) const {
  if (group) group->set_device(device);
}

void Ranks::check() const {
  if (group) group->check();
}

void Ranks::barrier(const std::function<void()>& while_waiting) const {
  if (group) group->barrier(while_waiting);
}

double Ranks::images_done(double own) const {
  if (!group) return own;
  group->set_progress(own);
  return group->progress_sum();
}

std::vector<nlohmann::json> Ranks::gather_json(const nlohmann::json& mine) const {
  if (!group) return {mine};
  std::vector<nlohmann::json> all;
  for (const auto& s : group->gather_strings(mine.dump())) all.push_back(nlohmann::json::parse(s));
  return all;
}

nlohmann::json Ranks::times() const {
  if (!group) return nlohmann::json::object();
  const GroupTimes t = group->times();
  return {{"rank", launch.rank}, {"rendezvous_seconds", t.rendezvous}, {"waiting_seconds", t.waiting},
          {"collective_seconds", t.collectives}};
}

nlohmann::json Ranks::describe(const std::vector<nlohmann::json>& entries) const {
  if (!group) return nullptr;
  return {{"launcher", launch.launcher}, {"world", launch.world}, {"ranks", entries}};
}

void run_as_rank(const CLI::App& cmd, double dist_timeout, const std::function<void(Ranks&)>& body) {
  install_stop_handlers();  // SIGTERM / SIGINT stop the run between batches (and end every rank, see below)
  Ranks ranks;
  ranks.launch = read_launch([](const char* name) -> const char* { return std::getenv(name); });
  if (!ranks.launch.distributed()) return body(ranks);
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(dist_timeout * 1000));
  ranks.group = std::make_unique<Group>(ranks.launch, timeout);
  try {
    ranks.group->check_same(given_options(cmd), "start every rank with the same command");
    body(ranks);
  } catch (const UsageError& e) {
    ranks.group->fail(true, user_message(e));
    throw;
  } catch (const c10::Error& e) {
    ranks.group->fail(false, e.what_without_backtrace());
    throw;
  } catch (const std::exception& e) {
    ranks.group->fail(false, user_message(e));
    throw;
  }
}

void check_same_files(const Ranks& ranks, const std::map<std::string, std::string>& files) {
  if (ranks.group) ranks.group->check_same(files, "give every rank the same files");
}

void check_shared_folder(const Ranks& ranks, const std::string& dir) {
  if (!ranks.group) return;
  const std::string probe = ".autoguide-rank" + std::to_string(ranks.launch.rank) + "-" + std::to_string(::getpid());
  write_file_atomic((fs::path(dir) / probe).string(), "");
  std::string missing;
  const auto probes = ranks.group->gather_strings(probe);
  for (size_t r = 0; r < probes.size() && missing.empty(); ++r)
    if (!file_exists((fs::path(dir) / probes[r]).string()))
      missing = "rank 0 cannot see the files rank " + std::to_string(r) + " writes in '" + dir +
                "' (its probe " + probes[r] + " is not there); give every rank the same shared folder";
  missing = ranks.group->broadcast_string(missing);
  ranks.group->barrier();  // every rank looked before any probe goes
  std::remove((fs::path(dir) / probe).c_str());
  if (!missing.empty()) throw UsageError(missing);
}

}  // namespace autoguide::cli
