// Named configurations (configs/*.json): which converted nets, which guidance weight.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace autoguide {

struct Preset {
  std::string name;
  std::string net, gnet, vae;  // file names inside the models folder; empty when none
  double guidance = 1;
  std::optional<double> gnet_ema;  // the guide's post-hoc EMA std when gnet is a snapshot set (phema.hpp)
  nlohmann::json reported;  // e.g. {"fid": 1.34}
  std::string source;       // the config file it came from
};

// Folders searched for presets, the first that exists wins: $AUTOGUIDE_CONFIGS alone when set; else the
// installed presets next to the executable (<exe_dir>/../share/autoguide/configs), then a source tree's
// configs/ seen from its build folder (<exe_dir>/../configs). The working directory is never searched.
std::vector<std::string> config_dirs();

// The presets of one config file's text, in entry order (`source` names the file in messages). A file without
// a "presets" object holds none. Throws UsageError for malformed JSON, an entry that is not an object, or a
// guidance weight validate_weight refuses.
std::vector<Preset> parse_presets(const std::string& json_text, const std::string& source);

// All presets of every configs/*.json, in file then entry order.
std::vector<Preset> load_presets();

// Throws UsageError naming close matches when `name` is unknown.
Preset find_preset(const std::string& name);

// A preset's files as paths inside a models folder; empty where the preset has none or it is not wanted.
struct PresetFiles {
  std::string net, gnet, vae;
};

// Collects the presets' files; every missing one is listed (with the command that converts it, and
// scripts/get_edm2.sh for the presets) in one UsageError, after all presets were looked at.
class PresetLocator {
 public:
  explicit PresetLocator(std::string models_dir) : dir_(std::move(models_dir)) {}
  PresetFiles locate(const Preset& p, bool with_gnet, bool with_vae);
  void check() const;  // throws if any file was missing

 private:
  std::string path(const std::string& file, bool is_vae);
  std::string dir_, missing_;
  std::vector<std::string> names_;
};

}  // namespace autoguide
