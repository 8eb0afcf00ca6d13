#include "rows.hpp"

#include <cctype>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "autoguide/error.hpp"
#include "autoguide/grid.hpp"
#include "autoguide/model.hpp"
#include "autoguide/seeds.hpp"
#include "autoguide/stop.hpp"
#include "image_output.hpp"
#include "fd_report.hpp"
#include "features.hpp"
#include "progress.hpp"
#include "sampling_options.hpp"

namespace fs = std::filesystem;

namespace autoguide::cli {

namespace {

// The first seeds' images of a row, from the ranks that made them, on rank 0.
torch::Tensor gather_preview(const Row& row, int64_t preview, const Ranks& ranks) {
  const auto shape = row.decoder->image_shape();
  const torch::Tensor mine =
      row.run.preview.defined() ? row.run.preview.cpu() : torch::empty({0, shape[0], shape[1], shape[2]}, torch::kUInt8);
  return gather_in_order(ranks.get(), mine, row.run.preview_positions, preview);
}

void summarise(const Row& row, size_t images, const std::vector<FdSpace>& spaces) {
  std::string fd_text;
  for (size_t k = 0; k < row.fd.size(); ++k) {
    fd_text += ", " + fd_label(spaces, k) + " " + interval_text(row.fd[k].fd);
    if (row.fd[k].infinity) fd_text += " (inf " + interval_text(*row.fd[k].infinity) + ")";
  }
  std::cerr << "autoguide: " << row.setting.label << " (" << to_string(row.run.mode) << "): " << images
            << " images in " << row.seconds << " s" << fd_text << "\n";
}

}  // namespace

std::array<int64_t, 3> common_image_shape(const std::vector<Row>& rows) {
  const auto shape = rows.front().decoder->image_shape();
  for (const auto& r : rows)
    if (r.decoder->image_shape() != shape)
      throw UsageError("the rows make images of different sizes (" + rows.front().setting.label + " and " +
                       r.setting.label + "); compare nets of one data set");
  return shape;
}

namespace {

// run_rows' arguments, and the row being run (for the message of a run stopped by a signal).
struct RowsJob {
  std::vector<Row>& rows;
  const GenerateRequest& base;
  const RowsOutput& out;
  FdRun& fd;
  const Ranks& ranks;
  size_t current = 0;
};

// The name a row's features are kept under in one space: unique in the run, readable as a file name.
std::string feature_key(size_t row, const Row& r, const FdSpace& space) {
  std::string key = std::to_string(row + 1) + "-" + r.setting.label + "." + space.name;
  for (char& c : key)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') c = '_';
  return key;
}

// Gathers a row's features on rank 0, keeps them and takes its FD in every space (the intervals come later,
// from estimate_rows).
void measure_row(Row& row, size_t i, const std::vector<StreamFeatures>& streams, int64_t n, RowsJob& job) {
  for (size_t k = 0; k < streams.size(); ++k) {
    const torch::Tensor f = streams[k].finish(job.ranks.get(), n);
    if (!job.ranks.root()) continue;
    const FdSpace& space = job.fd.spaces[k];
    row.feature_keys.push_back(feature_key(i, row, space));
    job.fd.features.put(row.feature_keys.back(), f);
    FdEstimate e;  // the value alone: no interval yet
    e.fd.value = frechet_distance(feature_stats(f), space.ref);
    e.fd.se = e.fd.lo = e.fd.hi = std::nan("");
    e.fd.n = f.size(0);
    row.fd.push_back(e);
  }
}

void run_each_row(RowsJob& job) {
  // Plain references, not a structured binding: lambdas below use them (clang refuses captured bindings in C++17).
  std::vector<Row>& rows = job.rows;
  const GenerateRequest& base = job.base;
  const RowsOutput& out = job.out;
  std::vector<FdSpace>& spaces = job.fd.spaces;
  const Ranks& ranks = job.ranks;
  size_t& i = job.current;
  ProgressLine line(!out.quiet && ranks.root());
  const auto n = static_cast<int64_t>(base.seeds.size());
  const int64_t preview = out.grid_cols == 0 ? n : std::min<int64_t>(out.grid_cols, n);
  for (i = 0; i < rows.size(); ++i) {
    Row& row = rows[i];
    if (row.before) row.before();
    if (row.same_as >= 0) {
      const Row& earlier = rows[static_cast<size_t>(row.same_as)];
      row.run = earlier.run, row.fd = earlier.fd, row.folder = earlier.folder, row.seconds = earlier.seconds;
      row.feature_keys = earlier.feature_keys;
      if (row.after) row.after();
      continue;
    }
    const GenerateRequest req = row.setting.request(base);
    nlohmann::json params = sample_parameters(req, row.setting.nets, run_mode(req, row.setting.nets), row.decoder);
    params.update(row.provenance);
    const std::string dir = row.folder.empty() ? "" : (fs::path(out.outdir) / row.folder).string();
    std::vector<StreamFeatures> streams;
    for (auto& space : spaces) streams.emplace_back(space.detector, space.ref.dim(), space.ref_path);
    auto sink = [&](const BatchResult& r, const torch::Tensor& pixels) {
      for (auto& s : streams) s.add(pixels, r.first);
      if (dir.empty()) return;
      for (size_t k = 0; k < r.seeds.size(); ++k) {
        const auto idx = static_cast<int64_t>(k);
        write_sample_png(image_path(dir, r.seeds[k], false), pixels[idx], params, r.seeds[k],
                         r.classes.defined() ? nlohmann::json(r.classes[idx].item<int64_t>()) : nlohmann::json());
      }
    };
    const std::string where = "setting " + std::to_string(i + 1) + "/" + std::to_string(rows.size()) + " (" +
                              row.setting.label + ")  image ";
    GenerateProgress now;
    auto draw = [&] {  // every rank's images of this row
      const double done = ranks.images_done(now.fraction() * static_cast<double>(now.images_total));
      line.update((static_cast<double>(i) + done / static_cast<double>(n)) / static_cast<double>(rows.size()),
                  static_cast<double>(i) * static_cast<double>(n) + done,
                  where + std::to_string(static_cast<int64_t>(done)) + "/" + std::to_string(n));
    };
    auto progress = [&](const GenerateProgress& p) {
      now = p;
      draw();
      ranks.check();
    };
    const auto t0 = std::chrono::steady_clock::now();
    row.run = run_setting(row.setting, base, *row.decoder, preview, sink, progress);
    now = row.run.done;
    ranks.barrier(draw);
    row.run.preview = gather_preview(row, preview, ranks);
    row.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    measure_row(row, i, streams, n, job);
    line.finish();
    if (!out.quiet && ranks.root()) summarise(row, base.seeds.size(), spaces);
    if (row.after) row.after();
  }
}

}  // namespace

void run_rows(std::vector<Row>& rows, const GenerateRequest& base, const RowsOutput& out, FdRun& fd,
              const Ranks& ranks) {
  RowsJob job{rows, base, out, fd, ranks};
  const size_t& i = job.current;
  try {
    run_each_row(job);
  } catch (...) {  // SIGTERM / SIGINT between batches (here, or on another rank that then failed the job)
    if (!stop_requested()) throw;
    const int sig = stop_signal();
    throw Interrupted(sig, "interrupted by " + signal_name(sig) + " in setting " + std::to_string(i + 1) + "/" +
                               std::to_string(rows.size()) + " (" + rows[std::min(i, rows.size() - 1)].setting.label +
                               "); no results were written: rerun the same command with --overwrite");
  }
}

void estimate_rows(std::vector<Row>& rows, const FdRun& fd, bool quiet) {
  if (fd.spaces.empty()) return;
  ProgressLine line(!quiet);
  for (size_t i = 0; i < rows.size(); ++i) {
    Row& row = rows[i];
    if (row.same_as >= 0) {
      row.fd = rows[static_cast<size_t>(row.same_as)].fd;
      continue;
    }
    for (size_t k = 0; k < fd.spaces.size(); ++k) {
      const double done = static_cast<double>(i * fd.spaces.size() + k);
      line.update(done / static_cast<double>(rows.size() * fd.spaces.size()), done * static_cast<double>(row.fd[k].fd.n),
                  "intervals: setting " + std::to_string(i + 1) + "/" + std::to_string(rows.size()) + ", " +
                         fd.spaces[k].name);
      row.fd[k] = estimate_fd(fd.features.get(row.feature_keys[k]), fd.spaces[k].ref, fd.settings);
    }
  }
  line.finish();
}

namespace {

GridLabels grid_labels(const std::vector<Row>& rows, const GenerateRequest& base) {
  GridLabels labels;
  for (const auto& r : rows) labels.rows.push_back(r.setting.label);
  const int64_t cols = rows.front().run.preview.size(0);
  for (int64_t k = 0; k < cols; ++k) labels.columns.push_back(std::to_string(base.seeds[static_cast<size_t>(k)]));
  labels.corner = "seed";
  return labels;
}

}  // namespace

torch::Tensor rows_grid(const std::vector<Row>& rows, const GenerateRequest& base) {
  std::vector<torch::Tensor> tiles;
  for (const auto& r : rows) tiles.push_back(r.run.preview);
  const int64_t cols = rows.front().run.preview.size(0);
  return make_labelled_grid(torch::cat(tiles), static_cast<int>(cols), grid_labels(rows, base));
}

nlohmann::json grid_layout(const std::vector<Row>& rows, const GenerateRequest& base, const std::string& file) {
  const GridLabels labels = grid_labels(rows, base);
  const torch::Tensor& preview = rows.front().run.preview;
  const GridMargins m = label_margins(labels, preview.size(2));
  const std::vector<int64_t> seeds(base.seeds.begin(), base.seeds.begin() + preview.size(0));
  // The classes of the shown seeds, drawn as the sampler draws them (the same for every row: same seeds).
  nlohmann::json classes = nlohmann::json::array();
  const ModelInfo& info = rows.front().setting.nets.main->info();
  if (info.label_dim > 0 && !seeds.empty()) {
    SeedGenerators gens(seeds, rows.front().setting.nets.main->device());
    const NoiseAndLabels drawn =
        draw_noise_and_labels(gens, info.img_channels, info.img_resolution, info.label_dim, base.class_idx);
    const torch::Tensor c = drawn.classes.cpu();
    for (int64_t k = 0; k < c.size(0); ++k) classes.push_back(c[k].item<int64_t>());
  } else {
    for (size_t k = 0; k < seeds.size(); ++k) classes.push_back(nullptr);
  }
  return {{"file", file},      {"left", m.left},   {"top", m.top}, {"tile_width", preview.size(3)},
          {"tile_height", preview.size(2)}, {"rows", labels.rows}, {"seeds", seeds}, {"classes", classes}};
}

}  // namespace autoguide::cli
