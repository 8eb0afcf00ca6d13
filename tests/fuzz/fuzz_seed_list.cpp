// Seed lists (--seeds): anything typed at the command line or pasted from a script.
#include <cstddef>
#include <cstdint>
#include <string>

#include "autoguide/error.hpp"
#include "autoguide/seeds.hpp"
#include "fuzz_target.hpp"

static int fuzz_seed_list(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<int64_t> seeds;
  try {
    seeds = autoguide::parse_seed_list(text);
  } catch (const autoguide::UsageError&) {
    return 0;  // the one way a parser of outside input may refuse it
  }
  if (seeds.empty() || seeds.size() > 10000000) __builtin_trap();
  // The parsed list, written out seed by seed, parses back to itself.
  if (seeds.size() <= 1000) {
    std::string again;
    for (int64_t s : seeds) {
      if (s < 0) __builtin_trap();
      again += (again.empty() ? "" : ",") + std::to_string(s);
    }
    if (autoguide::parse_seed_list(again) != seeds) __builtin_trap();
  }
  return 0;
}

const bool seed_list_registered = register_fuzz_target("seed_list", fuzz_seed_list);
