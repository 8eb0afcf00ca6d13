#include "autoguide/preset.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "autoguide/error.hpp"
#include "autoguide/guidance.hpp"
#include "autoguide/phema.hpp"
#include "json_input.hpp"

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
  if (const char* env = std::getenv("AUTOGUIDE_CONFIGS"); env && *env) return {env};  // set: the only one
  if (auto d = exe_dir(); !d.empty()) {
    const fs::path exe(d);
    dirs.push_back((exe / ".." / "share" / "autoguide" / "configs").lexically_normal().string());  // installed
    dirs.push_back((exe / ".." / "configs").lexically_normal().string());  // build/autoguide in a source tree
  }
  return dirs;
}

std::vector<Preset> parse_presets(const std::string& json_text, const std::string& source) {
  const std::string where = "preset file '" + source + "'";
  const nlohmann::json j = parse_json_input(json_text, where, "; fix or remove it");
  std::vector<Preset> out;
  if (!j.is_object() || !j.contains("presets") || !j["presets"].is_object()) return out;
  for (const auto& item : j["presets"].items()) {
    const std::string& name = item.key();
    const nlohmann::json& p = item.value();  // named, not a structured binding: lambdas capture it
    const std::string what = "preset '" + name + "' in " + where;
    if (!p.is_object()) throw UsageError(what + " is not a JSON object; fix or remove it");
    auto str = [&](const char* k) {
      return p.contains(k) && p[k].is_string() ? p[k].get<std::string>() : std::string();
    };
    Preset pr;
    pr.name = name;
    pr.source = source;
    pr.net = str("net");
    pr.gnet = str("gnet");
    pr.vae = str("vae");
    if (p.contains("guidance")) {
      if (!p["guidance"].is_number()) throw UsageError(what + ": guidance is not a number; fix or remove it");
      pr.guidance = p["guidance"].get<double>();
      validate_weight(pr.guidance, what + ": guidance");
    }
    if (p.contains("gnet_ema")) {
      if (!p["gnet_ema"].is_number()) throw UsageError(what + ": gnet_ema is not a number; fix or remove it");
      pr.gnet_ema = p["gnet_ema"].get<double>();
      check_ema_std(*pr.gnet_ema, what + ": gnet_ema");
    }
    pr.reported = p.value("reported", nlohmann::json::object());
    out.push_back(std::move(pr));
  }
  return out;
}

std::vector<Preset> load_presets() {
  std::vector<Preset> out;
  for (const auto& dir : config_dirs()) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.path().extension() == ".json") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      std::ifstream in(f, std::ios::binary);
      const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      for (auto& p : parse_presets(text, f.string())) out.push_back(std::move(p));
    }
    return out;  // the first folder that exists wins, so a user's folder shadows the built-in one
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

std::string PresetLocator::path(const std::string& file, bool is_vae) {
  const std::string p = (fs::path(dir_) / file).string();
  std::error_code ec;
  if (fs::exists(p, ec) || missing_.find(p + " (") != std::string::npos) return p;
  const std::string source = is_vae ? "diffusion_pytorch_model.safetensors" : fs::path(file).replace_extension(".pkl").string();
  missing_ += std::string(missing_.empty() ? "" : ", ") + p + " (scripts/" + (is_vae ? "export_vae.py " : "export_edm2.py ") +
              source + " " + p + ")";
  return p;
}

PresetFiles PresetLocator::locate(const Preset& p, bool with_gnet, bool with_vae) {
  const size_t before = missing_.size();
  PresetFiles f;
  f.net = path(p.net, false);
  if (with_gnet && !p.gnet.empty()) f.gnet = path(p.gnet, false);
  if (with_vae && !p.vae.empty()) f.vae = path(p.vae, true);
  if (missing_.size() != before) names_.push_back(p.name);
  return f;
}

void PresetLocator::check() const {
  if (missing_.empty()) return;
  std::string names;
  for (const auto& n : names_) names += (names.empty() ? "" : " ") + n;
  throw FieldError("models_dir", "preset" + std::string(names_.size() > 1 ? "s " : " ") + names + " need" +
                   (names_.size() > 1 ? " " : "s ") + missing_ + "; or download and convert everything with " +
                   "scripts/get_edm2.sh " + names + " (files are looked up in models_dir " + dir_ + ")");
}

}  // namespace autoguide
