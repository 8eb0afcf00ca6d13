// What `sweep` and `compare` share: generate's sampling options, each net file loaded once, the Fréchet
// distance measured while sampling, and a list of settings run into the rows of one labelled grid.
#pragma once
#include <CLI/CLI.hpp>
#include <torch/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "autoguide/detector.hpp"
#include "autoguide/metrics.hpp"
#include "autoguide/sweep.hpp"

namespace autoguide::cli {

struct SamplingOptions {
  std::string seeds = "0-7", sampler_name = "heun", interval_sigma, interval_steps, dtype = "auto";
  std::string device = "auto", detector, ref;
  int class_idx = -1, batch = 32, threads = 0, grid_cols = 16;
  int64_t num = 0;
  bool quiet = false;
  SamplerOptions sampler;
  CLI::Option* seeds_opt = nullptr;
};

// --seeds, --class, --batch, generate's sampler and schedule options, --interval-*, --dtype, --detector, --ref,
// --num, --grid-cols, --device, --threads, --quiet.
void add_sampling_options(CLI::App& cmd, SamplingOptions& o);

// The request every setting shares, checked (sampler, interval, batch, and the FD options together). Seeds:
// --seeds, else 0..N-1 with --num N, else 0-7.
GenerateRequest base_request(const SamplingOptions& o);
std::string seeds_text(const SamplingOptions& o);  // the seed list base_request uses, as text

// Nets by file, each loaded once, on one device in one precision.
class NetCache {
 public:
  NetCache(const torch::Device& device, NetPrecision precision) : device_(device), precision_(precision) {}
  const Denoiser& get(const std::string& path);

 private:
  torch::Device device_;
  NetPrecision precision_;
  std::map<std::string, Denoiser> nets_;  // node-based: references stay valid as nets are added
};

// Refuses (UsageError) a main net whose outputs are not RGB or grey pixels.
void check_pixels(const Denoiser& net);

// The detector and reference of --detector/--ref, checked on blank images shaped like the main net's output.
struct FdSetup {
  Detector detector;
  FeatureStats ref;
  std::string ref_path;
};
std::optional<FdSetup> open_fd(const SamplingOptions& o, const torch::Device& device, const ModelInfo& main);

struct Row {
  Setting setting;
  std::string folder;  // under the output folder; empty: no PNGs
  int same_as = -1;    // an earlier row that samples the very same images (w = 1 whatever the guide)
  SettingRun run;
  std::optional<double> fd;
};

// Runs the rows in order, keeping the first `grid_cols` images of each for the grid. A row with a folder gets
// its PNGs exactly as `generate --outdir` writes them; with `fd`, each row's images are measured as they are
// sampled. Rows with same_as reuse that row's results. A summary line per row unless quiet.
void run_rows(std::vector<Row>& rows, const GenerateRequest& base, const SamplingOptions& o,
              const std::string& outdir, FdSetup* fd);

// One grid row per setting and one column per kept seed, labelled with the settings' labels and the seeds.
torch::Tensor rows_grid(const std::vector<Row>& rows, const GenerateRequest& base);

}  // namespace autoguide::cli
