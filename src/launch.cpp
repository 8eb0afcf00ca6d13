#include "autoguide/launch.hpp"

#include <cstdlib>
#include <optional>

#include "autoguide/error.hpp"

namespace autoguide {

namespace {

constexpr int kDefaultPort = 29500;

std::optional<std::string> get(const EnvLookup& env, const char* name) {
  const char* v = env(name);
  return v ? std::optional<std::string>(v) : std::nullopt;
}

int64_t whole_number(const std::string& name, const std::string& text, int64_t lo, int64_t hi) {
  char* end = nullptr;
  const long long v = text.empty() ? 0 : std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || v < lo || v > hi)
    throw UsageError(name + "=" + text + " is not a whole number from " + std::to_string(lo) + " to " +
                     std::to_string(hi) + "; check how the launcher sets it");
  return v;
}

// Rank and world size from a launcher's pair of variables, both or neither; the local rank defaults to 0.
bool read_ranks(const EnvLookup& env, Launch& l, const char* rank, const char* world, const char* local) {
  const auto r = get(env, rank), w = get(env, world);
  if (!r && !w) return false;
  if (!r || !w)
    throw UsageError(std::string(r ? rank : world) + " is set but " + (r ? world : rank) +
                     " is not; a launcher sets both: set the other one too, or unset it to run alone");
  l.world = static_cast<int>(whole_number(world, *w, 1, 1 << 20));
  l.rank = static_cast<int>(whole_number(rank, *r, 0, 1 << 20));
  if (l.rank >= l.world)
    throw UsageError(std::string(rank) + "=" + *r + " is not below " + world + "=" + *w + ": ranks run from 0 to " +
                     std::to_string(l.world - 1) + "; check the launcher's process count");
  if (const auto lr = get(env, local)) l.local_rank = static_cast<int>(whole_number(local, *lr, 0, 1 << 20));
  return true;
}

void read_address(const EnvLookup& env, Launch& l, const std::string& default_addr, int default_port) {
  l.addr = get(env, "MASTER_ADDR").value_or(default_addr);
  if (l.addr.empty()) throw UsageError("MASTER_ADDR is empty; set it to the host of rank 0");
  const auto port = get(env, "MASTER_PORT");
  l.port = port ? static_cast<int>(whole_number("MASTER_PORT", *port, 1, 65535)) : default_port;
}

}  // namespace

std::string Launch::describe() const {
  return "rank " + std::to_string(rank) + " of " + std::to_string(world) + " (" + launcher + ", rendezvous " + addr +
         ":" + std::to_string(port) + ")";
}

Launch read_launch(const EnvLookup& env) {
  Launch l;
  if (read_ranks(env, l, "RANK", "WORLD_SIZE", "LOCAL_RANK")) {
    const bool agent = get(env, "TORCHELASTIC_RUN_ID").has_value();
    l.launcher = agent ? "torchrun" : "env";
    l.launcher_hosts_store = get(env, "TORCHELASTIC_USE_AGENT_STORE").value_or("") == "True";
    // A restarted torchrun job meets in the same agent store: its keys must not see the last attempt's.
    if (agent)
      l.key_prefix += get(env, "TORCHELASTIC_RUN_ID").value() + "/" +
                      get(env, "TORCHELASTIC_RESTART_COUNT").value_or("0") + "/";
    read_address(env, l, "127.0.0.1", kDefaultPort);
  } else if (read_ranks(env, l, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK")) {
    l.launcher = "mpirun";
    read_address(env, l, "127.0.0.1", kDefaultPort);
  } else if (get(env, "SLURM_STEP_ID") && read_ranks(env, l, "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID")) {
    l.launcher = "srun";
    const auto nodes = get(env, "SLURM_STEP_NODELIST") ? get(env, "SLURM_STEP_NODELIST") : get(env, "SLURM_JOB_NODELIST");
    // Rank 0 runs on the step's first node. Jobs sharing a node get different ports from their job ids.
    const auto job = get(env, "SLURM_JOB_ID");
    const int port = job ? kDefaultPort + static_cast<int>(whole_number("SLURM_JOB_ID", *job, 0, INT64_MAX) % 2000)
                         : kDefaultPort;
    read_address(env, l, nodes ? first_slurm_host(*nodes) : "127.0.0.1", port);
  }
  return l;
}

std::string first_slurm_host(const std::string& nodelist) {
  std::string host;
  for (size_t i = 0; i < nodelist.size();) {
    const char c = nodelist[i];
    if (c == ',') break;  // the end of the first host (commas inside brackets are skipped below)
    if (c != '[') {
      host += c, ++i;
      continue;
    }
    const size_t close = nodelist.find(']', i);
    if (close == std::string::npos) throw UsageError("cannot read the Slurm node list '" + nodelist + "'; set MASTER_ADDR");
    const std::string first = nodelist.substr(i + 1, close - i - 1);
    host += first.substr(0, first.find_first_of("-,"));  // "07-09,12" -> "07": zero padding kept as written
    i = close + 1;
  }
  if (host.empty()) throw UsageError("the Slurm node list '" + nodelist + "' names no host; set MASTER_ADDR");
  return host;
}

}  // namespace autoguide
