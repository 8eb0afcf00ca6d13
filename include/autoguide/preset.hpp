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
  nlohmann::json reported;  // e.g. {"fid": 1.34}
  std::string source;       // the config file it came from
};

// Folders searched for presets: $AUTOGUIDE_CONFIGS, ./configs, <exe>/../configs, the source tree's configs/.
std::vector<std::string> config_dirs();

// All presets of every configs/*.json, in file then entry order.
std::vector<Preset> load_presets();

// Throws UsageError naming close matches when `name` is unknown.
Preset find_preset(const std::string& name);

// --models DIR, else $AUTOGUIDE_MODELS, else ./models.
std::string models_dir(const std::string& cli_value);

}  // namespace autoguide
