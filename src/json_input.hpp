// JSON that comes from outside: model and VAE metadata inside downloaded files, preset files.
// nlohmann parses any depth without recursion, but copying or printing a value recurses once per level, so a
// file of nested brackets would overflow the stack there; input is refused beyond a depth no real file nears.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace autoguide {

inline constexpr int kMaxJsonDepth = 64;

// Parses `text`. Throws UsageError "<what> is not valid JSON (<reason>)<fix>" when it is malformed or nested
// deeper than kMaxJsonDepth; the reason never quotes the input, so the message stays one printable line.
nlohmann::json parse_json_input(const std::string& text, const std::string& what, const std::string& fix);

// True for an integer that fits an int (get<int>() would silently wrap anything larger).
bool is_int32(const nlohmann::json& v);

}  // namespace autoguide
