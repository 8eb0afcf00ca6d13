// `autoguide presets [--json]`: the named configurations and what the papers report for them.
#include <iostream>

#include "autoguide/preset.hpp"
#include "commands.hpp"
#include "options.hpp"

namespace autoguide::cli {

void add_presets(CLI::App& app) {
  auto* cmd = app.add_subcommand("presets", subcommand_help("presets"));
  static Params o;
  add_options(*cmd, o);
  cmd->footer("Examples:\n  autoguide presets\n  autoguide presets --json");
  cmd->callback([] {
    const bool as_json = o.json;
    auto all = load_presets();
    if (as_json) {
      nlohmann::json j = nlohmann::json::object();
      for (const auto& p : all)
        j[p.name] = {{"net", p.net}, {"gnet", p.gnet.empty() ? nlohmann::json() : nlohmann::json(p.gnet)},
                     {"guidance", p.guidance}, {"reported", p.reported}};
      std::cout << j.dump(2) << "\n";
      return;
    }
    for (const auto& p : all) {
      std::cout << p.name << "  net=" << p.net;
      if (!p.gnet.empty()) std::cout << "  gnet=" << p.gnet;
      std::cout << "  guidance=" << p.guidance;
      for (const auto& [k, v] : p.reported.items()) std::cout << "  " << k << "=" << v;
      std::cout << "\n";
    }
  });
}

}  // namespace autoguide::cli
