// autoguide: sample EDM2 diffusion networks with autoguidance or classifier-free guidance.
#include <c10/util/Exception.h>

#include <iostream>
#include <string>

#include "autoguide/error.hpp"
#include "autoguide/format.hpp"
#include "autoguide/stop.hpp"
#include "autoguide/version.hpp"
#include "commands.hpp"
#include "options.hpp"
#include "signals.hpp"

namespace {

int fail(int code, const std::string& message) {
  std::cerr << "autoguide: error: " << autoguide::first_line(message) << "\n";
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
  app.set_version_flag("--version", [] { return autoguide::build_info(); });
  app.require_subcommand(1);
  autoguide::cli::add_generate(app);
  autoguide::cli::add_info(app);
  autoguide::cli::add_presets(app);
  autoguide::cli::add_ref(app);
  autoguide::cli::add_fid(app);
  autoguide::cli::add_sweep(app);
  autoguide::cli::add_tune(app);
  autoguide::cli::add_compare(app);
  autoguide::cli::add_report(app);
  autoguide::cli::add_options_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    // CLI11 says "--steps: MESSAGE"; where the message (a library rule's, said with flags) names the flag, once.
    std::string message = e.what();
    const auto colon = message.find(": ");
    if (colon != std::string::npos && message.find(message.substr(0, colon), colon + 2) != std::string::npos)
      message = message.substr(colon + 2);
    return fail(2, message);
  } catch (const autoguide::UsageError& e) {
    return fail(2, autoguide::cli::user_message(e));
  } catch (const autoguide::Interrupted& e) {
    return fail(autoguide::cli::exit_code_for_signal(e.signal()), e.what());
  } catch (const c10::Error& e) {
    return runtime_fail(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return runtime_fail(autoguide::cli::user_message(e));
  }
  return 0;
}
