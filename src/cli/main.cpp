// autoguide: sample EDM2 diffusion networks with autoguidance or classifier-free guidance.
#include <c10/util/Exception.h>

#include <iostream>
#include <string>

#include "autoguide/error.hpp"
#include "autoguide/stop.hpp"
#include "commands.hpp"
#include "signals.hpp"

namespace {

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

int fail(int code, const std::string& message) {
  std::cerr << "autoguide: error: " << first_line(message) << "\n";
  return code;
}

// A failure once SIGTERM or SIGINT asked the run to stop (here, or on another rank that then failed the job)
// is that stop: the status a signal gives (143, 130), so that a launcher sees the job was ended, not broken.
int runtime_fail(const std::string& message) {
  using autoguide::stop_signal;
  return fail(stop_signal() ? autoguide::cli::exit_code_for_signal(stop_signal()) : 1, message);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"autoguide " AUTOGUIDE_VERSION
               ": sample EDM2 diffusion networks with autoguidance or classifier-free guidance"};
  app.set_version_flag("--version", "autoguide " AUTOGUIDE_VERSION);
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
  } catch (const autoguide::Interrupted& e) {
    return fail(autoguide::cli::exit_code_for_signal(e.signal()), e.what());
  } catch (const c10::Error& e) {
    return runtime_fail(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return runtime_fail(e.what());
  }
  return 0;
}
