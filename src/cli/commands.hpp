// The subcommands of the `autoguide` CLI; each registers itself on the app and runs from its callback.
#pragma once
#include <CLI/CLI.hpp>

namespace autoguide::cli {

void add_generate(CLI::App& app);
void add_info(CLI::App& app);
void add_presets(CLI::App& app);
void add_ref(CLI::App& app);
void add_fid(CLI::App& app);
void add_sweep(CLI::App& app);
void add_compare(CLI::App& app);
void add_tune(CLI::App& app);
void add_report(CLI::App& app);

}  // namespace autoguide::cli
