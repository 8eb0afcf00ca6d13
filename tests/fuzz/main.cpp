// libFuzzer's entry points for the harnesses of this folder: the one to run is named by the executable's name.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "fuzz_target.hpp"

namespace {

std::map<std::string, FuzzTarget>& targets() {
  static std::map<std::string, FuzzTarget> all;  // filled by the harnesses' static initialisers
  return all;
}

FuzzTarget chosen = nullptr;

}  // namespace

bool register_fuzz_target(const char* name, FuzzTarget target) {
  targets()[name] = target;
  return true;
}

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  std::string name = (*argv)[0];
  name = name.substr(name.find_last_of('/') + 1);
  const auto it = name.rfind("fuzz_", 0) == 0 ? targets().find(name.substr(5)) : targets().end();
  if (it == targets().end()) {
    std::fprintf(stderr, "run this as fuzz_<target> (a link to it); targets:");
    for (const auto& [known, fn] : targets()) std::fprintf(stderr, " %s", known.c_str());
    std::fprintf(stderr, "\n");
    std::exit(2);
  }
  chosen = it->second;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return chosen(data, size); }
