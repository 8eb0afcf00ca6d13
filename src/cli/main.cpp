// autoguide: sample EDM2 diffusion networks with autoguidance or classifier-free guidance.
#include <c10/util/Exception.h>

#include <iostream>
#include <string>

#include "autoguide/error.hpp"
#include "autoguide/version.hpp"
#include "commands.hpp"

namespace {

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

int fail(int code, const std::string& message) {
  std::cerr << "autoguide: error: " << first_line(message) << "\n";
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"autoguide " AUTOGUIDE_VERSION
               ": sample EDM2 diffusion networks with autoguidance or classifier-free guidance"};
  app.set_version_flag("--version", [] { return autoguide::build_info(); });
  app.require_subcommand(1);
  autoguide::cli::add_generate(app);
  autoguide::cli::add_info(app);
  autoguide::cli::add_presets(app);
  autoguide::cli::add_ref(app);
  autoguide::cli::add_fid(app);
  autoguide::cli::add_sweep(app);
  autoguide::cli::add_compare(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    return fail(2, e.what());
  } catch (const autoguide::UsageError& e) {
    return fail(2, e.what());
  } catch (const c10::Error& e) {
    return fail(1, e.what_without_backtrace());
  } catch (const std::exception& e) {
    return fail(1, e.what());
  }
  return 0;
}
