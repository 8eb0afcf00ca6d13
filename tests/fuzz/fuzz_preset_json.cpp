// Preset files (configs/*.json, or a folder named by $AUTOGUIDE_CONFIGS).
#include <cstddef>
#include <cstdint>
#include <string>

#include "autoguide/error.hpp"
#include "float32_range.hpp"
#include "autoguide/preset.hpp"
#include "fuzz_target.hpp"

static int fuzz_preset_json(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    for (const auto& p : autoguide::parse_presets(text, "fuzz.json")) {
      if (!(p.guidance >= 0) || !autoguide::fits_float32(p.guidance)) __builtin_trap();
      (void)p.reported.dump();  // `autoguide presets` prints what it reports
    }
  } catch (const autoguide::UsageError&) {
  }
  return 0;
}

const bool preset_json_registered = register_fuzz_target("preset_json", fuzz_preset_json);
