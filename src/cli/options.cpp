#include "options.hpp"

#include <algorithm>
#include <cctype>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "autoguide/decoder.hpp"
#include "autoguide/fd_uncertainty.hpp"
#include "autoguide/generate.hpp"
#include "autoguide/guidance.hpp"
#include "autoguide/schedule.hpp"
#include "autoguide/seeds.hpp"
#include "option_values.hpp"

namespace autoguide::cli {

namespace {

using Add = std::function<CLI::Option*(CLI::App&, Params&, const OptionSpec&)>;

// An option whose value lives at `ref(params)`; `with_default`: --help shows the live default.
template <class Ref>
Add value(Ref ref, bool with_default = true) {
  return [ref, with_default](CLI::App& app, Params& p, const OptionSpec& s) {
    CLI::Option* o = app.add_option(s.names, ref(p), s.help);
    if (with_default) o->capture_default_str();
    return o;
  };
}

// "a,b" -> {"a", "b"}; refuses an empty item (CLI11's own delimiter drops a trailing one silently).
std::vector<std::string> split_items(const std::string& text, const std::string& flag) {
  std::vector<std::string> items;
  size_t start = 0;
  for (size_t comma;; start = comma + 1) {
    comma = text.find(',', start);
    items.push_back(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (items.back().empty()) throw UsageError(flag + " '" + text + "' has an empty item; separate items by one comma");
    if (comma == std::string::npos) return items;
  }
}

// A list option: repeated, or comma-separated items (the same item syntax everywhere). Split once parsing is
// complete (split_lists).
template <class Ref>
Add list(Ref ref) {
  return [ref](CLI::App& app, Params& p, const OptionSpec& s) { return app.add_option(s.names, ref(p), s.help); };
}

template <class Ref>
Add flag(Ref ref) {
  return [ref](CLI::App& app, Params& p, const OptionSpec& s) { return app.add_flag(s.names, ref(p), s.help); };
}

// Adds `check` (a library rule) to what `add` declares.
Add checked(Add add, CLI::Validator check) {
  return [add, check](CLI::App& app, Params& p, const OptionSpec& s) { return add(app, p, s)->check(check); };
}

// A parse-time check that runs the library's own rule on the parsed value, so --help, the parser and the
// library refuse the same values in the same words.
template <class T>
CLI::Validator rule(std::function<void(T)> check) {
  return CLI::Validator(
      [check](std::string& text) -> std::string {
        T v{};
        if (!CLI::detail::lexical_cast(text, v)) return "'" + text + "' is not a " + (std::is_integral<T>::value ? "whole number" : "number");
        try {
          check(v);
        } catch (const UsageError& e) {
          return user_message(e);
        }
        return "";
      },
      "");  // the option's hint says the bound
}

// A check of the option's text by the CLI's parser of it (option_values.hpp).
CLI::Validator parses(std::function<void(const std::string&)> parse) {
  return CLI::Validator(
      [parse](std::string& text) -> std::string {
        try {
          parse(text);
        } catch (const UsageError& e) {
          return user_message(e);
        }
        return "";
      },
      "");
}

CLI::Validator at_least(int64_t n, const std::string& what) {
  return CLI::Validator(
      [n, what](std::string& text) -> std::string {
        try {
          size_t used = 0;
          if (std::stoll(text, &used) >= n && used == text.size()) return "";
        } catch (const std::exception&) {
        }
        return "must be " + what + " (got " + text + ")";
      },
      "");
}

const std::vector<std::string> kSample = {"generate", "sweep", "compare", "tune"};
const std::vector<std::string> kMeasure = {"sweep", "compare", "tune"};
const std::vector<std::string> kDevice = {"generate", "sweep", "compare", "tune", "ref", "fid"};

std::vector<std::string> plus(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::vector<OptionSpec> make_table() {
  using G = OptionGroup;
  std::vector<OptionSpec> t = {
      // Nets and guidance.
      {"--preset", "NAME", "Configuration preset (autoguide presets lists them); compare: one row per preset, repeatable",
       G::Nets, kSample, "", "", list([](Params& p) -> auto& { return p.presets; })},
      {"--net", "FILE", "Main network (.pt from scripts/export_edm2.py)", G::Nets, kSample, "nets.main", "",
       value([](Params& p) -> auto& { return p.net; }, false)},
      {"--gnet", "FILE[,FILE]", "Guiding net(s): a weaker conditional net gives autoguidance, an unconditional one "
       "CFG; generate takes one, sweep and compare one row (or curve) per net",
       G::Nets, kSample, "nets.guide", "", list([](Params& p) -> auto& { return p.gnets; })},
      {"--net-ema", "STD[,STD|A:B:S][@KIMG]", "Post-hoc EMA length (sigma_rel) of the main net when --net is a snapshot set "
       "(scripts/export_phema_set.py); @KIMG: at that snapshot's training length instead of the last; sweep: "
       "a list or range, crossed with --gnet-ema and --guidance",
       G::Nets, kSample, "nets.main_ema", "",
       checked(value([](Params& p) -> auto& { return p.net_ema; }, false),
               parses([](const std::string& s) { parse_ema_lengths(s, "--net-ema"); }))},
      {"--gnet-ema", "STD[,STD|A:B:S][@KIMG]", "Post-hoc EMA length of the guide(s) when --gnet is a snapshot set; "
       "sweep: a list or range, crossed with --guidance (the set loaded once)",
       G::Nets, kSample, "nets.guide_ema", "",
       checked(value([](Params& p) -> auto& { return p.gnet_ema; }, false),
               parses([](const std::string& s) { parse_ema_lengths(s, "--gnet-ema"); }))},
      {"--ema-precision", "stored|fp32", "Post-hoc EMA sums stored in the snapshots' dtype (EDM2's reconstruct_phema.py: "
       "fp16 for its raw snapshots) or kept in fp32",
       G::Nets, kSample, "ema_precision", "",
       checked(value([](Params& p) -> auto& { return p.ema_precision; }),
               CLI::IsMember({"stored", "fp32"}))},
      {"--ema-memory", "MB", "Memory for a snapshot set's snapshots: a larger set is streamed from its file, reading "
       "each snapshot once per build and building every EMA length a run needs in that one pass",
       G::Nets, kSample, "ema_memory", "",
       checked(value([](Params& p) -> auto& { return p.ema_memory; }), at_least(1, "a whole number of MB >= 1"))},
      {"--uncond", "FILE", "Unconditional net: CFG on its own, or mixed with a --gnet's autoguidance by --alpha",
       G::Nets, kSample, "nets.uncond", "", value([](Params& p) -> auto& { return p.uncond; }, false)},
      {"--guidance", "W[,W|A:B:S]", "Guidance weight w (1 = none); sweep: a list 1,1.5,2.1 or a range START:STOP:STEP; "
       "compare: the weight of guided rows without --ag/--cfg",
       G::Nets, kSample, "guidance", "",
       checked(value([](Params& p) -> auto& { return p.guidance; }),
               parses([](const std::string& s) { parse_weights(s); }))},
      {"--alpha", "A", "Share of autoguidance in the CFG + autoguidance mix (1 = pure autoguidance, 0 = pure CFG); "
       "needs --gnet and --uncond",
       G::Nets, {"generate", "compare"}, "alpha", "",
       checked(value([](Params& p) -> auto& { return p.alpha; }, false),
               rule<double>([](double a) { check_alpha(a); }))},
      {"--ag", "W", "compare: weight of the autoguidance rows", G::Nets, {"compare"}, "", "",
       checked(value([](Params& p) -> auto& { return p.ag; }, false),
               rule<double>([](double w) { validate_weight(w, "--ag"); }))},
      {"--cfg", "W", "compare: weight of the CFG rows", G::Nets, {"compare"}, "", "",
       checked(value([](Params& p) -> auto& { return p.cfg; }, false),
               rule<double>([](double w) { validate_weight(w, "--cfg"); }))},
      {"--mix", "W", "compare: weight of the mixed row (default: --ag)", G::Nets, {"compare"}, "", "",
       checked(value([](Params& p) -> auto& { return p.mix; }, false),
               rule<double>([](double w) { validate_weight(w, "--mix"); }))},
      {"--models", "DIR", "Folder of converted models for --preset", G::Nets, kSample, "models_dir", "AUTOGUIDE_MODELS",
       value([](Params& p) -> auto& { return p.models; })},

      // Seeds, sampler, schedule, precision.
      {"--seeds", "LIST", "Seeds, e.g. 0-63 or 1,2,5-10; the same for every row of sweep and compare (or 0..N-1 with "
       "--num N)",
       G::Sampling, kSample, "seeds", "",
       checked(value([](Params& p) -> auto& { return p.seeds; }),
               parses([](const std::string& s) { parse_seed_list(s); }))},
      {"--class", "INT>=0", "Class label (default: drawn from each seed)", G::Sampling, kSample, "class_idx", "",
       checked(value([](Params& p) -> auto& { return p.class_idx; }, false), at_least(0, "a class index >= 0"))},
      {"--batch", "INT>=" + std::to_string(kMinBatch), "Images per network call (sampler or detector)", G::Sampling, kDevice, "max_batch", "",
       checked(value([](Params& p) -> auto& { return p.batch; }),
               rule<int>([](int b) { check_max_batch(b); }))},
      {"--sampler", "NAME", "heun (EDM2's), euler or dpmpp2m", G::Sampling, kSample, "sampler", "",
       checked(value([](Params& p) -> auto& { return p.sampler_name; }),
               parses([](const std::string& s) { parse_sampler(s); }))},
      {"--steps", "INT>=" + std::to_string(kMinSteps), "Number of sampling steps", G::Sampling, kSample, "num_steps", "",
       checked(value([](Params& p) -> auto& { return p.sampler.schedule.num_steps; }),
               rule<int>([](int n) { check_num_steps(n); }))},
      {"--sigma_min,--sigma-min", "SIGMA", "Lowest noise level", G::Sampling, kSample, "sigma_min", "",
       value([](Params& p) -> auto& { return p.sampler.schedule.sigma_min; })},
      {"--sigma_max,--sigma-max", "SIGMA", "Highest noise level", G::Sampling, kSample, "sigma_max", "",
       value([](Params& p) -> auto& { return p.sampler.schedule.sigma_max; })},
      {"--rho", "RHO", "Time step exponent", G::Sampling, kSample, "rho", "",
       value([](Params& p) -> auto& { return p.sampler.schedule.rho; })},
      {"--S_churn,--S-churn,--s-churn", "X", "Stochasticity strength", G::Sampling, kSample, "S_churn", "",
       value([](Params& p) -> auto& { return p.sampler.S_churn; })},
      {"--S_min,--S-min,--s-min", "SIGMA", "Stochasticity min noise level", G::Sampling, kSample, "S_min", "",
       value([](Params& p) -> auto& { return p.sampler.S_min; })},
      {"--S_max,--S-max,--s-max", "SIGMA", "Stochasticity max noise level", G::Sampling, kSample, "S_max", "",
       value([](Params& p) -> auto& { return p.sampler.S_max; })},
      {"--S_noise,--S-noise,--s-noise", "X", "Stochasticity noise inflation", G::Sampling, kSample, "S_noise", "",
       value([](Params& p) -> auto& { return p.sampler.S_noise; })},
      {"--interval-sigma,--interval_sigma", "LO,HI", "Guide only where sigma_i is in (LO,HI], e.g. 0.28,2.9",
       G::Sampling, kSample, "interval_sigma", "",
       checked(value([](Params& p) -> auto& { return p.interval_sigma; }, false),
               parses([](const std::string& s) { parse_interval_sigma(s); }))},
      {"--interval-steps,--interval_steps", "A,B", "Guide only on steps A..B (inclusive), e.g. 17,22", G::Sampling,
       kSample, "interval_steps", "",
       checked(value([](Params& p) -> auto& { return p.interval_steps; }, false),
               parses([](const std::string& s) { parse_interval_steps(s); }))},
      {"--dtype", "NAME", "Network precision: auto (fp16 on CUDA, fp32 on CPU, as EDM2), fp32, fp16, bf16",
       G::Sampling, kSample, "precision", "",
       checked(value([](Params& p) -> auto& { return p.dtype; }),
               parses([](const std::string& s) { parse_precision(s); }))},
      {"--fast", "", "Run the U-Net natively (1x1 convolutions and attention as batched products); not bit-identical "
       "to EDM2's images, which the default keeps; no faster on AVX2-only CPUs (docs/benchmarks.md)",
       G::Sampling, kSample, "fast", "", flag([](Params& p) -> auto& { return p.fast; })},

      // VAE.
      {"--vae", "FILE", "VAE decoder for latent (ImageNet-512) nets (.pt from scripts/export_vae.py)", G::Vae, kSample,
       "vae", "", value([](Params& p) -> auto& { return p.vae; }, false)},
      {"--vae-batch,--vae_batch", "INT>=" + std::to_string(kMinVaeBatch), "Images per VAE decode call (EDM2's encoder batch)", G::Vae, kSample,
       "vae_batch", "",
       checked(value([](Params& p) -> auto& { return p.vae_batch; }),
               rule<int>([](int b) { check_vae_batch(b); }))},
      {"--vae-dtype,--vae_dtype", "NAME", "VAE precision: fp32 (EDM2's), bf16, fp16", G::Vae, kSample, "vae_precision",
       "",
       checked(value([](Params& p) -> auto& { return p.vae_dtype; }),
               parses([](const std::string& s) { parse_precision(s, "--vae-dtype"); }))},

      // Outputs.
      {"--out,--outdir", "PATH", "Where the command writes: a folder (generate: EDM2's 000016.png layout; sweep: "
       "grid.png, results.csv/json, fd.png, a folder per setting) or a file (compare: the grid PNG; ref: the "
       "statistics .npz; report: the page, default RUN/report.html or X.html; tune: tune.json, points/, images/)",
       G::Output, {"generate", "sweep", "compare", "tune", "ref", "report"}, "", "", value([](Params& p) -> auto& { return p.out; }, false)},
      {"--subdirs", "", "One subfolder per 1000 seeds", G::Output, {"generate"}, "", "",
       flag([](Params& p) -> auto& { return p.subdirs; })},
      {"--grid", "FILE", "Also write all images as one grid PNG", G::Output, {"generate"}, "", "",
       value([](Params& p) -> auto& { return p.grid; }, false)},
      {"--grid-cols,--grid_cols", "INT>=0", "Grid columns; sweep and compare: the first seeds shown per row (0: all; "
       "generate: near square)",
       G::Output, kSample, "", "",
       checked(value([](Params& p) -> auto& { return p.grid_cols; }), at_least(0, "a whole number >= 0"))},
      {"--npy", "FILE", "Write the raw float32 samples [N,C,H,W] in seed order", G::Output, {"generate"}, "", "",
       value([](Params& p) -> auto& { return p.npy; }, false)},
      {"--features-out", "FILE", "Also write the raw features, float32 [N,D] .npy (ref: for fid --pr and "
       "--ref-images; fid: the generated set's, for fid --paired)",
       G::Output, {"ref", "fid"},
       "", "", value([](Params& p) -> auto& { return p.features_out; }, false)},
      {"--resume", "", "Keep complete images from an earlier run and generate the rest (tune: continue a killed run "
       "from its measured points)", G::Output, {"generate", "tune"},
       "resume", "", flag([](Params& p) -> auto& { return p.resume; })},
      {"--reuse", "DIR", "tune: take the points an earlier tune of the same nets and settings measured (another "
       "objective, --first-num or --budget) instead of sampling them again",
       G::Output, {"tune"}, "", "", value([](Params& p) -> auto& { return p.reuse; }, false)},
      {"--overwrite", "", "Replace the outputs of an earlier run", G::Output, {"generate", "sweep", "compare", "tune", "ref", "fid", "report"}, "",
       "", flag([](Params& p) -> auto& { return p.overwrite; })},
      {"--report", "[=FILE]", "Also write report.html, one offline page of the results (charts with intervals, "
       "tables, images): sweep, tune: OUT/report.html; compare: OUT's name + .html; =FILE: there",
       G::Output, kMeasure, "", "", [](CLI::App& app, Params& p, const OptionSpec& s) {
         return app.add_option(s.names, p.report, s.help)->expected(0, 1)->default_str("");
       }},
      {"--json", "", "Print JSON", G::Output, {"fid", "info", "presets", "options"}, "", "",
       flag([](Params& p) -> auto& { return p.json; })},
      {"--markdown", "", "Print the table as Markdown (the README's)", G::Output, {"options"}, "", "",
       flag([](Params& p) -> auto& { return p.markdown; })},
      {"--quiet,-q", "", "No progress or summary on stderr", G::Output, plus(kDevice, {"report"}), "", "",
       flag([](Params& p) -> auto& { return p.quiet; })},

      // Feature spaces.
      {"--detector", "FILE", "Feature detector (TorchScript, uint8 [N,C,H,W] -> [N,D]); sweep and compare: measure "
       "each setting's FD, repeat with --ref for more feature spaces",
       G::Metrics, plus(kMeasure, {"ref", "fid"}), "", "", list([](Params& p) -> auto& { return p.detectors; })},
      {"--ref", "FILE", "Reference statistics (.npz from autoguide ref), one per --detector", G::Metrics,
       plus(kMeasure, {"fid"}), "", "", list([](Params& p) -> auto& { return p.refs; })},
      {"--num", "N", "Samples per setting for the FD: seeds 0..N-1 unless --seeds is given", G::Metrics, kMeasure, "",
       "", value([](Params& p) -> auto& { return p.num; }, false)},
      {"--images", "PATH", "Folder of PNGs (recursive) or .npy of uint8 [N,C,H,W] or float samples in [-1,1]; fid: "
       "also features .npy [N,D] (from --features-out), no detector needed",
       G::Metrics, {"ref", "fid"}, "", "", value([](Params& p) -> auto& { return p.images; }, false)},
      {"--ref-images,--ref_images", "PATH", "Reference set for --pr (and for FD without --ref): PNG folder, images "
       ".npy, or features .npy [N,D]",
       G::Metrics, {"fid"}, "", "", value([](Params& p) -> auto& { return p.ref_images; }, false)},
      {"--pr", "", "Also compute precision and recall (k=3) against --ref-images", G::Metrics, {"fid"}, "", "",
       flag([](Params& p) -> auto& { return p.pr; })},
      {"--resamples", "0|INT>=2", "Bootstrap resamples of each FD's interval, the paired differences' and FD-inf's "
       "(0: point estimates only)",
       G::Metrics, plus(kMeasure, {"fid"}), "resamples", "",
       checked(value([](Params& p) -> auto& { return p.resamples; }), rule<int>([](int r) {
         FdSettings s;
         s.resamples = r;
         check_fd_settings(s);
       }))},
      {"--confidence", "P", "Confidence of the intervals, in (0, 1)", G::Metrics, plus(kMeasure, {"fid"}), "confidence",
       "", checked(value([](Params& p) -> auto& { return p.confidence; }), rule<double>([](double c) {
         FdSettings s;
         s.confidence = c;
         check_fd_settings(s);
       }))},
      {"--features-memory", "MB", "Memory for the settings' features; beyond it they are written to .npy files "
       "under the output (sweep: OUT/features, compare: OUT's name + .features)",
       G::Metrics, kMeasure, "", "",
       checked(value([](Params& p) -> auto& { return p.features_memory; }), at_least(0, "a whole number >= 0"))},
      {"--budget", "IMAGES", "tune: images to spend in all, rounds and final (0: no limit; the run says what it plans "
       "to spend before it starts)",
       G::Metrics, {"tune"}, "budget", "",
       checked(value([](Params& p) -> auto& { return p.budget; }), at_least(0, "a whole number >= 0"))},
      {"--first-num", "N", "tune: seeds of the first round; each round doubles them up to --final-num", G::Metrics,
       {"tune"}, "first_num", "", checked(value([](Params& p) -> auto& { return p.first_num; }), at_least(2, "at least 2"))},
      {"--final-num", "N", "tune: seeds of the final estimate of each mode's two best points (FD-inf from 1000)", G::Metrics,
       {"tune"}, "final_num", "", checked(value([](Params& p) -> auto& { return p.final_num; }), at_least(2, "at least 2"))},
      {"--paired", "A,B", "Two generated sets on the same seeds (features .npy [N,D], PNG folders or images .npy): "
       "FD(A) - FD(B) with its paired interval",
       G::Metrics, {"fid"}, "", "", list([](Params& p) -> auto& { return p.paired; })},

      // Device and ranks.
      {"--device", "NAME", "cpu, cuda or cuda:N (default: cuda when available)", G::Ranks, kDevice, "", "",
       value([](Params& p) -> auto& { return p.device; })},
      {"--threads", "INT>=0", "CPU threads (default: LibTorch's, one per physical core)", G::Ranks, kDevice, "", "",
       checked(value([](Params& p) -> auto& { return p.threads; }, false), at_least(0, "a whole number >= 0"))},
      {"--dist-timeout,--dist_timeout", "SECONDS", "Under a launcher: seconds without a heartbeat after which a rank "
       "counts as dead and the others stop",
       G::Ranks, kDevice, "", "", checked(value([](Params& p) -> auto& { return p.dist_timeout; }), CLI::PositiveNumber.description(""))},
  };
  return t;
}

bool word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// `text` with every whole-word `from` replaced by `to` (a field may hold a dot: nets.guide).
std::string replace_word(const std::string& text, const std::string& from, const std::string& to) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    const size_t at = text.find(from, i);
    if (at == std::string::npos) break;
    const bool before = at == 0 || !(word_char(text[at - 1]) || text[at - 1] == '-' || text[at - 1] == '.');
    const size_t end = at + from.size();
    const bool after = end == text.size() || !word_char(text[end]);
    out += text.substr(i, at - i) + (before && after ? to : from);
    i = end;
  }
  return out + text.substr(std::min(i, text.size()));
}

std::string markdown_table() {
  std::ostringstream s;
  s << "| option | aliases | value | subcommands | what it does |\n|---|---|---|---|---|\n";
  for (const auto& o : option_table()) {
    std::string aliases, commands;
    for (const auto& a : o.aliases()) aliases += (aliases.empty() ? "`" : ", `") + a + "`";
    for (const auto& c : o.commands) commands += (commands.empty() ? "" : ", ") + c;
    std::string help = o.help;
    if (!o.env.empty()) help += " (env `" + o.env + "`)";
    s << "| `" << o.canonical() << "` | " << aliases << " | " << (o.hint.empty() ? "" : "`" + o.hint + "`") << " | "
      << commands << " | " << help << " |\n";
  }
  return s.str();
}

nlohmann::json json_table() {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& o : option_table())
    j.push_back({{"name", o.canonical()}, {"aliases", o.aliases()}, {"hint", o.hint}, {"help", o.help},
                 {"group", to_string(o.group)}, {"commands", o.commands}, {"field", o.field}, {"env", o.env}});
  return j;
}

}  // namespace

bool Params::given(const std::string& name) const { return app && app->count(name) > 0; }

std::string to_string(OptionGroup g) {
  switch (g) {
    case OptionGroup::Nets: return "Nets and guidance";
    case OptionGroup::Sampling: return "Sampling";
    case OptionGroup::Vae: return "VAE";
    case OptionGroup::Output: return "Output";
    case OptionGroup::Metrics: return "Metrics";
    case OptionGroup::Ranks: return "Device and ranks";
  }
  return "";
}

std::string OptionSpec::canonical() const { return names.substr(0, names.find(',')); }

std::vector<std::string> OptionSpec::aliases() const {
  std::vector<std::string> all;
  std::stringstream ss(names);
  for (std::string n; std::getline(ss, n, ',');) all.push_back(n);
  return {all.begin() + 1, all.end()};
}

const std::vector<OptionSpec>& option_table() {
  static const std::vector<OptionSpec> table = make_table();
  return table;
}

void add_options(CLI::App& cmd, Params& p) {
  p.app = &cmd;
  cmd.parse_complete_callback([&p] {
    for (auto [list, flag] : {std::pair{&p.presets, "--preset"}, {&p.gnets, "--gnet"}, {&p.detectors, "--detector"},
                              {&p.refs, "--ref"}, {&p.paired, "--paired"}}) {
      std::vector<std::string> items;
      for (const auto& text : *list)
        for (auto& item : split_items(text, flag)) items.push_back(std::move(item));
      *list = std::move(items);
    }
  });
  for (const auto& spec : option_table()) {
    if (std::find(spec.commands.begin(), spec.commands.end(), cmd.get_name()) == spec.commands.end()) continue;
    CLI::Option* o = spec.add(cmd, p, spec);
    o->group(to_string(spec.group));
    if (!spec.hint.empty()) o->type_name(spec.hint);
    if (!spec.env.empty()) o->envname(spec.env);
  }
}

std::string flag_for(const std::string& field) {
  for (const auto& o : option_table())
    if (o.field == field) return o.canonical();
  return field;
}

std::string user_message(const std::exception& e) {
  std::string message = e.what();
  if (const auto* named = dynamic_cast<const NamedFields*>(&e))
    for (const auto& field : named->fields) message = replace_word(message, field, flag_for(field));
  return message;
}

const std::vector<std::pair<std::string, std::string>>& subcommands() {
  static const std::vector<std::pair<std::string, std::string>> all = {
      {"generate", "Generate images (EDM2 generate_images.py, plus autoguidance)"},
      {"sweep", "Sample guides at several guidance weights on the same seeds: grid, folders, FD"},
      {"compare", "No guidance, CFG and autoguidance (and their mix) side by side on the same seeds; FD per row"},
      {"tune", "Search guides, EMA lengths and w for the lowest FD with a fraction of a grid's images; "
               "autoguidance vs CFG with intervals"},
      {"report", "report.html from a sweep, compare or tune: charts with intervals, tables, images (offline)"},
      {"ref", "Feature statistics of a reference image set (for fid --ref)"},
      {"fid", "Fréchet distance (FID with Inception-v3) to reference statistics; --pr adds precision/recall"},
      {"info", "Print a converted model's metadata and parameter count"},
      {"presets", "List the presets of configs/"},
      {"options", "List every option: its aliases, value, subcommands and help (the README's table)"},
  };
  return all;
}

const std::string& subcommand_help(const std::string& name) {
  for (const auto& [n, help] : subcommands())
    if (n == name) return help;
  throw std::logic_error("no subcommand " + name);
}

void add_options_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("options", subcommand_help("options"));
  static Params p;
  add_options(*cmd, p);
  cmd->footer("Examples:\n  autoguide options\n  autoguide options --markdown > table.md\n  autoguide options --json");
  cmd->callback([] {
    if (p.markdown) {
      std::cout << markdown_table();
    } else if (p.json) {
      std::cout << json_table().dump(2) << "\n";
    } else {
      for (const auto& o : option_table()) {
        std::string commands;
        for (const auto& c : o.commands) commands += (commands.empty() ? "" : ",") + c;
        std::cout << o.canonical() << (o.hint.empty() ? "" : " " + o.hint) << "  [" << commands << "]  " << o.help
                  << "\n";
      }
    }
  });
}

}  // namespace autoguide::cli
