// What sweep and compare share after their options: a list of settings run one after another on the same
// seeds, each written and measured like `generate`'s output, and shown as the rows of one labelled grid.
#pragma once
#include <torch/types.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "autoguide/decoder.hpp"
#include "autoguide/sweep.hpp"
#include "fd_options.hpp"
#include "ranks.hpp"

namespace autoguide::cli {

struct Row {
  Setting setting;
  PixelDecoder* decoder = nullptr;  // of the setting's main net
  nlohmann::json provenance = nlohmann::json::object();  // recorded beside the parameters (e.g. the preset)
  std::string folder;  // under the output folder; empty: no PNGs
  int same_as = -1;    // an earlier row that samples the very same images (w = 1 whatever the guide)
  SettingRun run;       // what the library did on this rank (run.seconds: its sampling alone)
  double seconds = 0;   // the row's wall time on rank 0: sampling, waiting for the other ranks, gathering
  std::vector<FdEstimate> fd;  // one per feature space, when measured (rank 0)
  std::vector<std::string> feature_keys;  // where FdRun::features keeps the row's features, one per space
  // Called as the row's turn comes and once it is done (even for a same_as row), so that a command can build
  // a net just before its rows and free it after them (sweep's EMA lengths); empty: nothing.
  std::function<void()> before, after;
};

// Refuses rows whose images differ in shape (one grid, one detector).
std::array<int64_t, 3> common_image_shape(const std::vector<Row>& rows);

struct RowsOutput {
  std::string outdir;  // rows with a folder write their PNGs under it, as `generate --outdir` does
  int64_t grid_cols = 16;  // the first seeds each grid row shows; 0: all
  bool quiet = false;
};

// Runs the rows in order, each rank its share of the seeds (base.shard), keeping the first `grid_cols` images
// of each row for the grid; each row's images are measured in every feature space as they are sampled. Rows
// with same_as reuse that row's results. On rank 0: the grid's images, every rank's features kept in fd.features,
// each row's FD (its value; estimate_rows adds the intervals), and a summary line per row unless quiet.
void run_rows(std::vector<Row>& rows, const GenerateRequest& base, const RowsOutput& out, FdRun& fd,
              const Ranks& ranks);

// On rank 0, once every rank is done with the rows (the bootstrap can take long, and no rank should wait for it
// inside a collective): each row's FD with its interval and FD-inf in every space, from its kept features; the
// run's FDs until then are values alone.
void estimate_rows(std::vector<Row>& rows, const FdRun& fd, bool quiet);

// One grid row per setting and one column per kept seed, labelled with the settings' labels and the seeds.
torch::Tensor rows_grid(const std::vector<Row>& rows, const GenerateRequest& base);

// Where each image of rows_grid's picture sits (margins and tile size in pixels, the rows' labels, the seeds
// of the columns and their classes), so that a report can say which image a click fell on. `file`: the grid's
// path relative to the results file.
nlohmann::json grid_layout(const std::vector<Row>& rows, const GenerateRequest& base, const std::string& file);

}  // namespace autoguide::cli
