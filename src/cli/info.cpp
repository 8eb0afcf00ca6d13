// `autoguide info MODEL.pt [--json]`: what a converted model is.
#include <iostream>

#include "autoguide/model.hpp"
#include "commands.hpp"
#include "options.hpp"

namespace autoguide::cli {

void add_info(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", subcommand_help("info"));
  static Params o;
  static std::string& path = o.model;
  cmd->add_option("model", path, "Model file (.pt) written by scripts/export_edm2.py")->required();
  add_options(*cmd, o);
  cmd->footer("Examples:\n  autoguide info models/demo/main.pt\n  autoguide info models/demo/guide.pt --json");
  cmd->callback([] {
    const bool as_json = o.json;
    auto net = Denoiser::load(path, torch::kCPU);
    const auto& m = net.info();
    const int64_t params = net.loaded_param_count();
    if (as_json) {
      nlohmann::json j = m.raw;
      j["file"] = path;
      j["file_sha256"] = net.file_sha256();
      j["loaded_param_count"] = params;
      std::cout << j.dump(2) << "\n";
      return;
    }
    auto opt = [](const std::optional<double>& v) { return v ? std::to_string(*v) : std::string("unknown"); };
    std::cout << "file:          " << path << "\n"
              << "sha256:        " << net.file_sha256() << "\n"
              << "architecture:  EDM2" << (m.model_size.empty() ? "" : "-" + m.model_size) << " (model_channels "
              << m.model_channels << ")\n"
              << "parameters:    " << params << " (" << human_count(params) << ")\n"
              << "resolution:    " << m.img_resolution << "x" << m.img_resolution << ", " << m.img_channels
              << " channels\n"
              << "classes:       " << (m.label_dim ? std::to_string(m.label_dim) : std::string("unconditional")) << "\n"
              << "sigma_data:    " << m.sigma_data << "\n"
              << "encoder:       " << m.encoder.type << "\n"
              << "training kimg: " << opt(m.training_kimg) << "\n"
              << "EMA std:       " << opt(m.ema_std) << "\n"
              << "fp16 on CUDA:  " << (m.use_fp16 ? "yes" : "no") << "\n"
              << "source:        " << (m.source_file.empty() ? "unknown" : m.source_file)
              << (m.source_sha256.empty() ? "" : " (sha256 " + m.source_sha256.substr(0, 16) + ")") << "\n";
  });
}

}  // namespace autoguide::cli
