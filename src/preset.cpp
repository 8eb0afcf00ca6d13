#include "autoguide/preset.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "autoguide/error.hpp"

namespace fs = std::filesystem;

namespace autoguide {

namespace {

std::string exe_dir() {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : p.parent_path().string();
}

}  // namespace

std::vector<std::string> config_dirs() {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("AUTOGUIDE_CONFIGS")) dirs.push_back(env);
  dirs.push_back("configs");
  if (auto d = exe_dir(); !d.empty()) dirs.push_back((fs::path(d) / ".." / "configs").string());
#ifdef AUTOGUIDE_SOURCE_DIR
  dirs.push_back(std::string(AUTOGUIDE_SOURCE_DIR) + "/configs");
#endif
  return dirs;
}

std::vector<Preset> load_presets() {
  std::vector<Preset> out;
  std::vector<fs::path> seen;
  for (const auto& dir : config_dirs()) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    auto canon = fs::weakly_canonical(dir, ec);
    if (std::find(seen.begin(), seen.end(), canon) != seen.end()) continue;
    seen.push_back(canon);
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.path().extension() == ".json") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      nlohmann::json j;
      try {
        std::ifstream in(f);
        j = nlohmann::json::parse(in);
      } catch (const nlohmann::json::exception& e) {
        throw UsageError("preset file '" + f.string() + "' is not valid JSON: " + e.what());
      }
      if (!j.contains("presets") || !j["presets"].is_object()) continue;
      for (const auto& [name, p] : j["presets"].items()) {
        Preset pr;
        pr.name = name;
        pr.source = f.string();
        auto str = [&](const char* k) { return p.contains(k) && p[k].is_string() ? p[k].get<std::string>() : std::string(); };
        pr.net = str("net");
        pr.gnet = str("gnet");
        pr.vae = str("vae");
        pr.guidance = p.value("guidance", 1.0);
        pr.reported = p.value("reported", nlohmann::json::object());
        out.push_back(std::move(pr));
      }
    }
    break;  // the first folder that exists wins, so a user's folder shadows the built-in one
  }
  return out;
}

Preset find_preset(const std::string& name) {
  auto all = load_presets();
  for (auto& p : all)
    if (p.name == name) return p;
  std::string hint;
  for (const auto& p : all)
    if (p.name.find(name) != std::string::npos || name.find(p.name) != std::string::npos) hint += " " + p.name;
  throw UsageError("unknown preset '" + name + "'" + (hint.empty() ? "" : "; did you mean:" + hint) +
                   " (`autoguide presets` lists them)");
}

std::string models_dir(const std::string& cli_value) {
  if (!cli_value.empty()) return cli_value;
  if (const char* env = std::getenv("AUTOGUIDE_MODELS")) return env;
  return "models";
}

}  // namespace autoguide
