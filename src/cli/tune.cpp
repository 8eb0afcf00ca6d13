// `autoguide tune`: which guide, EMA length and w give the lowest FD, and does autoguidance beat CFG, from an
// adaptive search (guidance_search.hpp) instead of a grid. Every point it measures is sampled and measured by
// the rows of sweep (run_rows: the same seeds, PNGs, features, ranks); a point measured in an earlier round
// only samples the seeds it lacks. OUT/tune.json records every evaluation and the answer, and is rewritten after
// each round, with each point's features in OUT/points/, so that --resume continues a killed run.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>

#include "atomic_file.hpp"
#include "autoguide/error.hpp"
#include "autoguide/format.hpp"
#include "autoguide/guidance_search.hpp"
#include "autoguide/seeds.hpp"
#include "autoguide/version.hpp"
#include "commands.hpp"
#include "fd_options.hpp"
#include "fd_report.hpp"
#include "image_output.hpp"
#include "json_input.hpp"
#include "nets.hpp"
#include "npy.hpp"
#include "option_values.hpp"
#include "report_page.hpp"
#include "rows.hpp"
#include "sampling_options.hpp"
#include "tune_points.hpp"

namespace fs = std::filesystem;

namespace autoguide::cli {

namespace {

// A candidate as the command line gave it: a guide file, a snapshot set at one EMA length, or the
// unconditional net of CFG; with the main net at one of its --net-ema lengths when it is a snapshot set.
struct TuneCandidate {
  std::string label, group, path, stem;
  std::optional<EmaRequest> ema;
  std::optional<EmaRequest> net_ema;
  std::string main_stem;  // "" for one main net; "main-ema0.100" where --net-ema lists several
};

std::string slug(std::string s) {
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') c = '_';
  return s;
}

// --guidance START:STOP:STEP: the range and the lattice it is searched on (the grid `sweep` would take).
struct WeightRange {
  double lo = 1, hi = 3, step = 0.05;
};
WeightRange parse_range(const std::string& text) {
  if (std::count(text.begin(), text.end(), ':') != 2)
    throw UsageError("tune searches a range: give --guidance START:STOP:STEP (e.g. 1:3:0.05), not " + text);
  const std::vector<double> ws = parse_weights(text);
  WeightRange r;
  r.lo = ws.front(), r.hi = ws.back();
  r.step = std::stod(text.substr(text.rfind(':') + 1));
  return r;
}

std::string std_text(double std) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3f", std);
  return text;
}

// Each guide (a file, or a set at each --gnet-ema length) and --uncond, crossed with the main net's lengths.
std::vector<TuneCandidate> make_candidates(const Params& o) {
  if (!o.presets.empty()) throw UsageError("tune takes nets, not presets: give --net and --gnet / --uncond");
  if (o.net.empty()) throw UsageError("no main net: give --net MODEL.pt");
  if (o.gnets.empty() && o.uncond.empty())
    throw UsageError("no candidate to search: give --gnet GUIDE.pt (or a,b.pt) and/or --uncond U.pt");
  const std::vector<EmaRequest> emas = ema_requests(o.gnet_ema, "--gnet-ema", o.ema_precision);
  std::vector<std::optional<EmaRequest>> net_emas;
  for (const EmaRequest& e : ema_requests(o.net_ema, "--net-ema", o.ema_precision)) net_emas.emplace_back(e);
  if (net_emas.empty()) net_emas.emplace_back(std::nullopt);
  std::vector<TuneCandidate> guides;
  std::set<std::string> paths;
  for (const std::string& g : o.gnets) {
    if (g.empty()) throw UsageError("--gnet has an empty item; give files separated by commas");
    if (!paths.insert(g).second) throw UsageError("--gnet lists " + g + " twice");
    const std::string name = fs::path(g).filename().string(), stem = fs::path(g).stem().string();
    if (!emas.empty() && is_snapshot_set(g)) {
      for (const EmaRequest& e : emas)
        guides.push_back({name + " ema=" + std_text(e.std), "autoguidance", g, slug(stem + "-ema" + std_text(e.std)), e, {}, ""});
      continue;
    }
    guides.push_back({name, "autoguidance", g, slug(stem), std::nullopt, {}, ""});
  }
  if (!o.uncond.empty())
    guides.push_back({fs::path(o.uncond).filename().string(), "cfg", o.uncond, slug(fs::path(o.uncond).stem().string()), std::nullopt, {}, ""});
  std::vector<TuneCandidate> out;
  for (const auto& net_ema : net_emas)
    for (TuneCandidate c : guides) {
      std::error_code ec;
      if (fs::equivalent(c.path, o.net, ec) && (!c.ema || !net_ema || c.ema->std == net_ema->std))
        throw UsageError(c.path + (c.ema ? " at ema " + std_text(c.ema->std) : std::string()) +
                         " is the main net itself; a guide must be a weaker net (give another --gnet or --uncond)");
      c.net_ema = net_ema;
      if (net_emas.size() > 1) {
        c.main_stem = "main-ema" + std_text(net_ema->std);
        c.label = "main ema=" + std_text(net_ema->std) + ", " + c.label;
        c.stem = c.main_stem + "-" + c.stem;
      }
      out.push_back(c);
    }
  return out;
}

class TuneRun;

// Where two runs' parameters part: "sampling.steps", for a message.
std::string first_difference(const nlohmann::json& a, const nlohmann::json& b, const std::string& at = "") {
  if (a.is_object() && b.is_object()) {
    for (const auto& [k, v] : a.items())
      if (!b.contains(k) || b[k] != v) return first_difference(v, b.contains(k) ? b[k] : nlohmann::json(), at.empty() ? k : at + "." + k);
    for (const auto& [k, v] : b.items())
      if (!a.contains(k)) return at.empty() ? k : at + "." + k;
  }
  return at.empty() ? "the whole" : at;
}

// An earlier run's tune.json (it may be damaged: UsageError naming it, with `fix`).
nlohmann::json read_tune_json(const fs::path& file, const std::string& fix) {
  std::ifstream in(file, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  nlohmann::json j = parse_json_input(text, file.string(), fix);
  if (!j.is_object()) throw UsageError(file.string() + " is not a tune.json" + fix);
  return j;
}

// The search's measure: rank 0 decides what to sample and tells the other ranks; every rank samples its share.
class CliMeasure : public SearchMeasure {
 public:
  explicit CliMeasure(TuneRun& run) : run_(run) {}
  void extend(const std::vector<SearchPoint>& points, int64_t n) override;
  FdEstimate estimate(const SearchPoint& p, int64_t n) override;
  FdDifference difference(const SearchPoint& a, const SearchPoint& b, int64_t n) override;

 private:
  TuneRun& run_;
};

class TuneRun {
 public:
  TuneRun(const Params& o, const Ranks& ranks);
  void run();
  void follow();  // the other ranks: sample what rank 0 asks for until it is done

  // For CliMeasure.
  void sample(const nlohmann::json& plan);
  std::string key(const SearchPoint& p) const;
  const PointStore& points() const { return *points_; }
  const FdRun& fd() const { return *fd_; }
  nlohmann::json plan_of(const std::vector<SearchPoint>& points, int64_t n) const;
  const Ranks& ranks;

 private:
  Row make_row(const SearchPoint& p);
  SearchOptions search_options() const;
  nlohmann::json parameters() const;
  nlohmann::json point_json(const SearchPoint& p, int64_t n, const FdEstimate& objective) const;
  nlohmann::json round_json(const SearchRound& r) const;
  nlohmann::json result_json(const SearchResult& r, const SearchCost& cost) const;
  nlohmann::json preset_json(const SearchResult& r, size_t group) const;
  void write_state(const nlohmann::json& state) const;
  void check_resume() const;
  void reuse_points();
  void announce(const SearchCost& cost) const;
  void merge_same_nets();

  const Params& o;
  const WeightRange range;
  const std::vector<TuneCandidate> given;  // as the command line gave them
  std::vector<TuneCandidate> candidates;   // those searched: one per distinct net
  std::vector<std::pair<std::string, std::string>> merged_;  // a candidate given, the one with its weights
  const SamplingSetup setup;
  NetCache nets;
  std::vector<const Denoiser*> mains;  // per candidate
  std::vector<const Denoiser*> guides;  // per candidate
  PixelDecoder* decoder = nullptr;
  std::optional<FdRun> fd_;
  std::optional<PointStore> points_;
  std::vector<nlohmann::json> rounds_;
  int64_t sampled_ = 0;  // images this process's run sampled (rank 0 counts every rank's)
};

std::string seed_text(const Params& o) {
  if (o.num != 0) throw UsageError("tune sets its seeds per round: drop --num, give --first-num and --final-num");
  return o.given("--seeds") ? o.seeds : "0-" + std::to_string(std::max<int64_t>(o.final_num, 2) - 1);
}

TuneRun::TuneRun(const Params& o, const Ranks& ranks)
    : ranks(ranks), o(o), range(parse_range(o.guidance)), given(make_candidates(o)), candidates(given),
      setup(resolve_sampling(o, seed_text(o), ranks.shard())), nets(setup, o.vae) {
  if (o.detectors.empty()) throw UsageError("tune needs an objective: give --detector X.pt --ref STATS.npz (the first pair is the objective)");
  check_spaces(o);
  if (static_cast<int64_t>(setup.base.seeds.size()) < o.final_num)
    throw UsageError("--seeds has " + std::to_string(setup.base.seeds.size()) + " seeds; --final-num " +
                     std::to_string(o.final_num) + " needs that many");
  for (const auto& c : candidates) {  // a streamed set then builds all of its lengths in one pass
    nets.plan(o.net, c.net_ema, "nets.main_ema");
    nets.plan(c.path, c.ema, "nets.guide_ema");
  }
  for (auto& c : candidates) {
    mains.push_back(&nets.get(o.net, c.net_ema, "nets.main_ema"));
    guides.push_back(&nets.get(c.path, c.ema, "nets.guide_ema"));
    if (guides.back()->info().label_dim == 0) c.group = "cfg";  // an unconditional guide is CFG, however given
  }
  merge_same_nets();
  check_search(search_options());
  decoder = &nets.decoder(*mains.front());  // one decoder: the lengths of one net decode alike
  fd_.emplace(open_fd(o, setup.device, decoder->image_shape(), (fs::path(o.out) / "features").string()));
  std::vector<std::string> names;
  for (const auto& s : fd_->spaces) names.push_back(s.name);
  points_.emplace(fs::path(o.out) / "points", names);
}

// Candidates that are one net (a snapshot set's EMA length that is another --gnet file's net, one file under two
// names) would be sampled twice for the same images: each is searched once, under the first name given.
void TuneRun::merge_same_nets() {
  if (candidates.size() < 2) return;
  std::map<std::pair<std::string, std::string>, size_t> first;  // (main net, guide's weights) -> candidate
  std::map<const Denoiser*, std::string> digests;  // a guide shared by several main lengths is hashed once
  for (size_t c = 0; c < candidates.size();) {
    auto [d, added] = digests.emplace(guides[c], "");
    if (added) d->second = guides[c]->weights_sha256();
    const auto [it, fresh] = first.emplace(std::make_pair(candidates[c].main_stem, d->second), c);
    if (fresh) {
      ++c;
      continue;
    }
    merged_.emplace_back(candidates[c].label, candidates[it->second].label);
    if (!o.quiet)
      std::cerr << "autoguide: tune: " << merged_.back().first << " has the weights of " << merged_.back().second
                << "; searched once, as " << merged_.back().second << "\n";
    const auto at = static_cast<std::ptrdiff_t>(c);
    candidates.erase(candidates.begin() + at), mains.erase(mains.begin() + at), guides.erase(guides.begin() + at);
  }
}

SearchOptions TuneRun::search_options() const {
  SearchOptions s;
  for (const auto& c : candidates) s.candidates.push_back({c.label, c.group, c.main_stem});
  s.w_lo = range.lo, s.w_hi = range.hi, s.w_step = range.step;
  s.first_num = o.first_num, s.final_num = o.final_num, s.budget = o.budget;
  return s;
}

std::string TuneRun::key(const SearchPoint& p) const {
  const TuneCandidate& c = candidates[p.candidate];
  if (p.w != 1) return c.stem + "-w" + format_weight(p.w);
  return c.main_stem.empty() ? "unguided-w1.00" : "unguided-" + c.main_stem + "-w1.00";
}

// Each point's PNGs: OUT/images/KEY (the folder is the command's own, so --overwrite may clear it).
std::string image_folder(const std::string& key) { return "images/" + key;
}

Row TuneRun::make_row(const SearchPoint& p) {
  Row row;
  const TuneCandidate& c = candidates[p.candidate];
  const std::string label = p.w != 1 ? c.label + " w=" + format_weight(p.w)
                            : c.main_stem.empty() ? "unguided w=1.00" : "unguided " + c.main_stem + " w=1.00";
  row.setting = {label, {mains[p.candidate], guides[p.candidate], nullptr}, p.w};
  row.decoder = decoder;
  row.folder = image_folder(key(p));
  return row;
}

nlohmann::json TuneRun::plan_of(const std::vector<SearchPoint>& points, int64_t n) const {
  nlohmann::json plan = {{"n", n}, {"points", nlohmann::json::array()}};
  for (const auto& p : points)  // a resumed run already has some: taken back from OUT/points
    if (points_->have(key(p)) < n) plan["points"].push_back({{"candidate", p.candidate}, {"w", p.w}, {"from", points_->have(key(p))}});
  return plan;
}

// Samples each point of a plan on the seeds it lacks: the points that lack the same seeds as one set of rows.
void TuneRun::sample(const nlohmann::json& plan) {
  const int64_t n = plan.at("n");
  std::map<int64_t, std::vector<SearchPoint>> by_start;
  for (const auto& p : plan.at("points")) by_start[p.at("from")].push_back({p.at("candidate"), p.at("w")});
  for (const auto& [from, pts] : by_start) {
    GenerateRequest base = setup.base;
    base.seeds = std::vector<int64_t>(setup.base.seeds.begin() + from, setup.base.seeds.begin() + n);
    std::vector<Row> rows;
    for (const auto& p : pts) rows.push_back(make_row(p));
    sampled_ += static_cast<int64_t>(rows.size()) * (n - from);
    run_rows(rows, base, {o.out, 1, o.quiet}, *fd_, ranks);
    if (!ranks.root()) continue;
    for (size_t i = 0; i < rows.size(); ++i) {
      std::vector<torch::Tensor> more;
      for (const auto& k : rows[i].feature_keys) more.push_back(fd_->features.get(k));
      points_->append(key(pts[i]), more);
    }
  }
}

void CliMeasure::extend(const std::vector<SearchPoint>& points, int64_t n) {
  const nlohmann::json plan = run_.plan_of(points, n);
  if (plan["points"].empty()) return;
  if (run_.ranks.get()) run_.ranks.get()->broadcast_string(plan.dump());
  run_.sample(plan);
}

FdEstimate CliMeasure::estimate(const SearchPoint& p, int64_t n) {
  const FdRun& fd = run_.fd();
  return estimate_fd(run_.points().get(run_.key(p), 0).slice(0, 0, n), fd.spaces[0].ref, fd.settings);
}

FdDifference CliMeasure::difference(const SearchPoint& a, const SearchPoint& b, int64_t n) {
  const FdRun& fd = run_.fd();
  return fd_difference(run_.points().get(run_.key(a), 0).slice(0, 0, n), run_.points().get(run_.key(b), 0).slice(0, 0, n),
                       fd.spaces[0].ref, fd.settings);
}

void TuneRun::follow() {
  for (;;) {
    const nlohmann::json plan = nlohmann::json::parse(ranks.get()->broadcast_string(""));
    if (plan.contains("done")) return;
    sample(plan);
  }
}

// What decides the search's answer: a resumed run must have the same.
nlohmann::json TuneRun::parameters() const {
  nlohmann::json c = nlohmann::json::array();
  for (const auto& k : given)
    c.push_back({{"label", k.label}, {"group", k.group}, {"file", k.path},
                 {"ema", k.ema ? nlohmann::json(k.ema->std) : nlohmann::json()},
                 {"net_ema", k.net_ema ? nlohmann::json(k.net_ema->std) : nlohmann::json()}});
  nlohmann::json p = {{"net", o.net},
                      {"net_ema", o.net_ema},
                      {"candidates", c},
                      {"guidance", {{"lo", range.lo}, {"hi", range.hi}, {"step", range.step}}},
                      {"first_num", o.first_num},
                      {"final_num", o.final_num},
                      {"budget", o.budget},
                      {"seeds", seed_text(o)},
                      {"detectors", o.detectors},
                      {"refs", o.refs},
                      {"bootstrap", bootstrap_json(fd_->settings)}};
  p["sampling"] = sample_parameters(setup.base, {mains.front(), guides.front(), nullptr}, GuidanceMode::None, decoder);
  // Not what sampled the images: a rebuilt tool resumes a run (its images do not depend on the commit).
  for (const char* drop : {"seed", "class", "guidance", "mode", "gnet", "gnet_sha256", "guide_ema", "commit", "tool"})
    p["sampling"].erase(drop);
  return p;
}

nlohmann::json TuneRun::point_json(const SearchPoint& p, int64_t n, const FdEstimate& objective) const {
  nlohmann::json j = {{"w", p.w}, {"seeds", n}, {"folder", image_folder(key(p))}, {"fd", estimate_json(objective)}};
  for (size_t k = 1; k < fd_->spaces.size(); ++k)  // the other spaces: their values, to see whether they agree
    j["other_spaces"][fd_->spaces[k].name] =
        frechet_distance(feature_stats(points_->get(key(p), k).slice(0, 0, n)), fd_->spaces[k].ref);
  return j;
}

nlohmann::json TuneRun::round_json(const SearchRound& r) const {
  nlohmann::json cands = nlohmann::json::array();
  for (size_t c = 0; c < r.candidates.size(); ++c) {
    const CandidateRound& cr = r.candidates[c];
    nlohmann::json j = {{"candidate", candidates[c].label}, {"group", candidates[c].group}, {"measured", cr.measured}};
    if (!cr.measured) j["out"] = cr.out;
    if (cr.measured) {
      nlohmann::json evals = nlohmann::json::array();
      for (size_t k = 0; k < cr.weights.size(); ++k) evals.push_back(point_json({c, cr.weights[k]}, r.n, cr.fds[k]));
      j.update({{"centre", cr.centre}, {"step", cr.step}, {"evaluations", evals}, {"best_w", cr.best_w},
                {"at_edge", cr.at_edge}, {"converged", cr.converged}, {"leader", cr.leader}, {"dropped", cr.dropped},
                {"vs_leader", cr.vs_leader ? difference_json(*cr.vs_leader, candidates[c].label, "leader") : nlohmann::json()},
                {"drop_bound", std::isfinite(cr.drop_bound) ? nlohmann::json(cr.drop_bound) : nlohmann::json()}});
    }
    cands.push_back(j);
  }
  return {{"n", r.n}, {"images", r.images}, {"candidates", cands}};
}

// A configs/ entry for a group's winner: the files and the weight, with what was measured.
nlohmann::json TuneRun::preset_json(const SearchResult& r, size_t group) const {
  const FinalEstimate& f = r.finals[r.winners[group]];
  const TuneCandidate& c = candidates[f.point.candidate];
  nlohmann::json p = {{"net", o.net}, {"gnet", f.point.w == 1 ? nlohmann::json() : nlohmann::json(c.path)},
                      {"guidance", f.point.w}, {"detector", o.detectors[0]}, {"ref", o.refs[0]}};
  if (c.ema) p["gnet_ema"] = c.ema->std;
  if (c.net_ema) p["net_ema"] = c.net_ema->std;
  p["reported"] = {{"fd_" + fd_->spaces[0].name, f.estimate.fd.value}, {"samples", f.estimate.fd.n}};
  return p;
}

nlohmann::json TuneRun::result_json(const SearchResult& r, const SearchCost& cost) const {
  nlohmann::json finals = nlohmann::json::array();
  for (const auto& f : r.finals) {
    const TuneCandidate& c = candidates[f.point.candidate];
    nlohmann::json j = {{"candidate", c.label}, {"group", c.group}, {"w", f.point.w}, {"rank", f.rank},
                        {"folder", image_folder(key(f.point))}, {"seeds", o.final_num}};
    for (size_t k = 0; k < fd_->spaces.size(); ++k)
      j["estimates"][fd_->spaces[k].name] =
          k == 0 ? estimate_json(f.estimate)
                 : estimate_json(estimate_fd(points_->get(key(f.point), k).slice(0, 0, o.final_num), fd_->spaces[k].ref, fd_->settings));
    j["vs_winner"] = f.vs_winner ? difference_json(*f.vs_winner, c.label + " w=" + format_weight(f.point.w), "winner") : nlohmann::json();
    finals.push_back(j);
  }
  nlohmann::json winners = nlohmann::json::object(), presets = nlohmann::json::object();
  for (size_t g = 0; g < r.groups.size(); ++g) {
    const FinalEstimate& f = r.finals[r.winners[g]];
    winners[r.groups[g]] = {{"candidate", candidates[f.point.candidate].label}, {"w", f.point.w},
                            {"estimate", estimate_json(f.estimate)}};
    presets["tuned-" + r.groups[g]] = preset_json(r, g);
  }
  nlohmann::json j = {{"finals", finals}, {"winners", winners}, {"preset", presets}, {"stopped", r.stopped},
                      {"images", r.images}, {"grid_images", cost.grid_images},
                      {"grid", std::to_string(candidates.size()) + " candidates x the weights " +
                                   format_weight(range.lo) + ":" + format_weight(range.hi) + ":" +
                                   format_weight(range.step) + " at " + std::to_string(o.final_num) + " seeds"}};
  if (r.between_groups) {
    const FinalEstimate& a = r.finals[r.winners[0]];
    const FinalEstimate& b = r.finals[r.winners[1]];
    j["between_groups"] = difference_json(*r.between_groups, r.groups[0] + " " + candidates[a.point.candidate].label + " w=" + format_weight(a.point.w),
                                          r.groups[1] + " " + candidates[b.point.candidate].label + " w=" + format_weight(b.point.w));
  }
  return j;
}

void TuneRun::write_state(const nlohmann::json& state) const {
  nlohmann::json j = {{"tool", "autoguide " AUTOGUIDE_VERSION}, {"parameters", parameters()}, {"rounds", rounds_}};
  j["merged"] = nlohmann::json::array();
  for (const auto& [label, same_as] : merged_) j["merged"].push_back({{"candidate", label}, {"same_as", same_as}});
  j.update(state);
  j["spaces"] = nlohmann::json::array();
  for (size_t k = 0; k < fd_->spaces.size(); ++k)
    j["spaces"].push_back({{"name", fd_->spaces[k].name}, {"detector", o.detectors[k]}, {"ref", o.refs[k]}, {"objective", k == 0}});
  write_file_atomic((fs::path(o.out) / "tune.json").string(), j.dump(2) + "\n");
}

void TuneRun::check_resume() const {
  const fs::path file = fs::path(o.out) / "tune.json";
  if (!o.resume) {
    if (!o.overwrite && fs::exists(file))
      throw UsageError(file.string() + " already exists; add --resume to continue that run or --overwrite to start again");
    return;
  }
  if (!fs::exists(file)) throw UsageError("--resume: " + file.string() + " does not exist; drop --resume to start a run");
  const nlohmann::json old = read_tune_json(file, "; start again with --overwrite");
  if (!old.contains("parameters") || old["parameters"] != parameters())
    throw UsageError("--resume: " + file.string() + " was made with other options; give the same options, or "
                     "--overwrite to start again");
}

// --reuse DIR: another tune of the same nets, candidates and sampling (its objective, first round or budget may
// differ): its points' images are these, so their features are taken instead of sampling again.
void TuneRun::reuse_points() {
  const fs::path file = fs::path(o.reuse) / "tune.json";
  if (!fs::exists(file)) throw UsageError("--reuse: " + file.string() + " does not exist; give the folder of an earlier tune");
  nlohmann::json theirs = read_tune_json(file, "; give the folder of an earlier tune").value("parameters", nlohmann::json());
  nlohmann::json ours = parameters();
  for (const char* free : {"detectors", "refs", "budget", "first_num", "bootstrap"}) {
    if (theirs.is_object()) theirs.erase(free);
    ours.erase(free);
  }
  if (theirs != ours)
    throw UsageError("--reuse: " + file.string() + " sampled other nets, candidates, seeds or settings (" +
                     first_difference(ours, theirs) + "); its images are not this run's (only the detectors, "
                     "--first-num and --budget may differ)");
  const size_t taken = points_->load(fs::path(o.reuse) / "points");
  if (!o.quiet) std::cerr << "autoguide: tune: took " << taken << " measured points from " << o.reuse << "\n";
}

void TuneRun::announce(const SearchCost& cost) const {
  if (o.quiet) return;
  std::cerr << "autoguide: tune: " << candidates.size() << " candidates, w in " << format_weight(range.lo) << ":"
            << format_weight(range.hi) << " step " << format_weight(range.step) << "; first round " << o.first_num
            << " seeds, final " << o.final_num << ". Planned: " << cost.images << " images in " << cost.rounds
            << " rounds and the final if no candidate is dropped (fewer when some are); "
            << (o.budget > 0 ? "budget " + std::to_string(o.budget) : std::string("no --budget")) << "; the grid it "
            << "replaces: " << cost.grid_images << "\n";
}

// --report's page: OUT/report.html, or the file given.
fs::path tune_report_path(const Params& o) { return o.report.empty() ? fs::path(o.out) / "report.html" : fs::path(o.report); }

void TuneRun::run() {
  ranks.use_device(setup.device);
  check_same_files(ranks, nets.file_hashes());
  if (!ranks.root()) return follow();
  std::optional<OutputLock> lock;
  check_resume();
  if (o.given("--report")) {  // refused before any sampling, not after hours of it
    if (tune_report_path(o).lexically_normal() == (fs::path(o.out) / "tune.json").lexically_normal())
      throw UsageError("--report " + tune_report_path(o).string() + " would replace tune's own tune.json; give the page another name");
    if (!o.overwrite && !o.resume && fs::exists(tune_report_path(o)))
      throw UsageError(tune_report_path(o).string() + " already exists; add --overwrite to replace it");
    ensure_writable_parent(tune_report_path(o).string());
  }
  lock.emplace(OutputLock::claim_folder(o.out, "--out"));
  if (o.overwrite && !o.resume)
    for (const char* ours : {"points", "images", "features", "tune.json"}) fs::remove_all(fs::path(o.out) / ours);
  if (o.resume) points_->load(fs::path(o.out) / "points");
  if (!o.reuse.empty()) reuse_points();
  const SearchOptions so = search_options();
  const SearchCost cost = search_cost(so);
  announce(cost);
  CliMeasure measure(*this);
  SearchResult result;
  try {
    result = search_guidance(so, measure, [&](const SearchRound& r) {
      rounds_.push_back(round_json(r));
      write_state({{"state", "running"}});
    });
  } catch (...) {
    if (ranks.get()) ranks.get()->broadcast_string(nlohmann::json{{"done", true}}.dump());
    throw;
  }
  if (ranks.get()) ranks.get()->broadcast_string(nlohmann::json{{"done", true}}.dump());
  nlohmann::json state = result_json(result, cost);
  state["state"] = "done";
  write_state(state);
  if (o.given("--report")) write_report(fs::path(o.out) / "tune.json", tune_report_path(o));
  if (o.quiet) return;
  for (size_t g = 0; g < result.groups.size(); ++g) {
    const FinalEstimate& f = result.finals[result.winners[g]];
    std::cerr << "autoguide: best " << result.groups[g] << ": " << candidates[f.point.candidate].label
              << " w=" << format_weight(f.point.w) << ", " << estimate_cells("fd", f.estimate) << "\n";
  }
  if (result.between_groups)
    std::cerr << "autoguide: " << verdict_text(*result.between_groups, state["between_groups"]["a"], state["between_groups"]["b"]) << "\n";
  std::cerr << "autoguide: tune spent " << result.images << " images (the grid: " << cost.grid_images << "; sampled by "
            << "this run: " << sampled_ << "); wrote "
            << (fs::path(o.out) / "tune.json").string() << (o.given("--report") ? ", " + tune_report_path(o).string() : "")
            << "\n";
}

}  // namespace

void add_tune(CLI::App& app) {
  auto* cmd = app.add_subcommand("tune", subcommand_help("tune"));
  static Params o;
  o.guidance = "1:3:0.05";
  add_options(*cmd, o);
  cmd->footer(
      "Examples:\n"
      "  autoguide tune --net main.pt --gnet guide.pt,guide-long.pt --uncond uncond.pt --guidance 1:3:0.05 \\\n"
      "      --detector det.pt --ref ref.npz --budget 3000 --out out/tune\n"
      "  autoguide tune --net main.pt --gnet guide-set.pt --gnet-ema 0.05:0.15:0.05 --detector det.pt --ref ref.npz "
      "--out out/tune-ema");
  cmd->callback([cmd] { run_as_rank(*cmd, o.dist_timeout, [](const Ranks& ranks) {
    if (o.out.empty()) throw UsageError("no output folder: give --out DIR");
    TuneRun(o, ranks).run();
  }); });
}

}  // namespace autoguide::cli
