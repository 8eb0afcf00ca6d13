// Every option of the CLI, declared once (as llama.cpp's common/arg.h does): its names (canonical first, then
// the aliases that keep EDM2's and older spellings working), value hint, help, group in --help, environment
// variable, the library field it sets (so that the library's errors can be said with the flag), the check
// that refuses bad values at parse time (built from the library's own check), and the subcommands that take
// it. A subcommand takes what the table says; nothing else declares an option.
#pragma once
#include <CLI/CLI.hpp>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "autoguide/error.hpp"
#include "autoguide/sampler.hpp"

namespace autoguide::cli {

// The values of every option; each subcommand has its own, with its defaults set before its options are
// added, so that --help shows the live default.
struct Params {
  // Nets and guidance.
  std::vector<std::string> presets, gnets;
  std::string net, uncond, guidance = "1";
  std::string net_ema, gnet_ema, ema_precision = "stored";  // post-hoc EMA lengths of snapshot sets
  int64_t ema_memory = 8192;  // MB of a set's snapshots kept resident; above, streamed (phema.hpp)
  double alpha = std::nan(""), ag = std::nan(""), cfg = std::nan(""), mix = std::nan("");
  // Seeds, sampler and schedule.
  std::string seeds, sampler_name = "heun", interval_sigma, interval_steps, dtype = "auto", models = "models";
  int class_idx = -1, batch = 32;
  SamplerOptions sampler;
  bool fast = false;
  // VAE.
  std::string vae, vae_dtype = "fp32";
  int vae_batch = 4;  // EDM2's encoder_batch_size
  // Outputs.
  std::string out, grid, npy, features_out;
  std::string report;  // --report's FILE; empty with --report alone: the default place
  std::string reuse;   // tune: an earlier tune's folder
  int grid_cols = 16;
  bool subdirs = false, resume = false, overwrite = false, json = false, quiet = false, markdown = false;
  // Feature spaces and image sets.
  std::vector<std::string> detectors, refs;
  std::string images, ref_images, model;
  int64_t num = 0;
  bool pr = false;
  int64_t budget = 0, first_num = 64, final_num = 1000;  // tune: images in all, seeds of the first round and the final
  std::vector<std::string> paired;
  int resamples = 200;  // FdSettings'
  double confidence = 0.95;
  int64_t features_memory = 4096;  // MB
  // Device and ranks.
  std::string device = "auto";
  int threads = 0;
  double dist_timeout = 1800;  // seconds (ranks.hpp)

  const CLI::App* app = nullptr;  // the subcommand these were parsed by
  // Whether the option (any of its names) was given on the command line or by its environment variable.
  bool given(const std::string& name) const;
};

enum class OptionGroup { Nets, Sampling, Vae, Output, Metrics, Ranks };
std::string to_string(OptionGroup g);

struct OptionSpec {
  std::string names;  // CLI11 spelling, canonical first: "--sigma_min,--sigma-min"
  std::string hint;   // the value's form ("INT", "FILE", ...); empty for a flag
  std::string help;
  OptionGroup group;
  std::vector<std::string> commands;  // the subcommands that take it
  std::string field;                  // the library field it sets, named in the library's errors; or empty
  std::string env;                    // environment variable read when the option is not given; or empty
  std::function<CLI::Option*(CLI::App&, Params&, const OptionSpec&)> add;

  std::string canonical() const;  // "--sigma_min"
  std::vector<std::string> aliases() const;
};

// The table, in --help order.
const std::vector<OptionSpec>& option_table();

// Adds the options the table gives `cmd` (by its name), bound to `p`; sets p.app.
void add_options(CLI::App& cmd, Params& p);

// The flag that sets a library field ("num_steps" -> "--steps"), or the field itself when no option does.
std::string flag_for(const std::string& field);

// A library error said with flags: each field it names (NamedFields) replaced by its flag, as whole words.
std::string user_message(const std::exception& e);

// The subcommands in order, with a line of what each does: `autoguide options` and the README table use it.
const std::vector<std::pair<std::string, std::string>>& subcommands();
const std::string& subcommand_help(const std::string& name);

// `autoguide options`: the table as Markdown (the README's) or JSON.
void add_options_command(CLI::App& app);

}  // namespace autoguide::cli
