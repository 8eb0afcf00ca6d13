// Which of several processes this one is, read from the environment of the launcher that started it:
// torchrun (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), Slurm's srun (SLURM_PROCID, SLURM_NTASKS,
// SLURM_LOCALID, the step's node list) or Open MPI's mpirun (OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK).
// Pure parsing of an environment lookup, so every launcher's spelling is tested without launching anything.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

namespace autoguide {

struct Launch {
  std::string launcher;  // "torchrun", "srun", "mpirun", "env" (RANK/WORLD_SIZE set by hand); empty: alone
  int rank = 0, world = 1, local_rank = 0;
  std::string addr = "127.0.0.1";  // where the rendezvous is hosted: by rank 0, or by torchrun's agent
  int port = 29500;
  bool launcher_hosts_store = false;  // torchrun's agent store: rank 0 connects as a client like the others
  std::string key_prefix = "autoguide/";  // this run's keys, apart from a launcher's own in a shared store

  bool distributed() const { return world > 1; }
  std::string describe() const;  // "rank 1 of 3 (torchrun, rendezvous 127.0.0.1:29500)"
};

// Returns the variable's value, or null when it is not set (std::getenv in the CLI, a map in tests).
using EnvLookup = std::function<const char*(const char*)>;

// The innermost launcher wins: torchrun's RANK/WORLD_SIZE (also when torchrun runs under srun), then
// mpirun's, then srun's. Slurm counts only inside a job step (SLURM_STEP_ID set), so a command run directly
// in an sbatch script, where SLURM_PROCID=0 and SLURM_NTASKS=N are set too, runs alone instead of waiting
// for N-1 ranks that never come. Throws UsageError for half-set or inconsistent variables.
Launch read_launch(const EnvLookup& env);

// The first host of a Slurm host list: "gpu[07-09,12],cpu1" -> "gpu07", "rack[1-2]-n[3-4]" -> "rack1-n3".
std::string first_slurm_host(const std::string& nodelist);

}  // namespace autoguide
