#include "json_input.hpp"

#include <limits>

#include "autoguide/error.hpp"

namespace autoguide {

namespace {

struct TooDeep {};

}  // namespace

nlohmann::json parse_json_input(const std::string& text, const std::string& what, const std::string& fix) {
  const auto limit_depth = [](int depth, nlohmann::json::parse_event_t event, nlohmann::json&) {
    const bool opens = event == nlohmann::json::parse_event_t::object_start ||
                       event == nlohmann::json::parse_event_t::array_start;
    if (opens && depth >= kMaxJsonDepth) throw TooDeep{};
    return true;
  };
  try {
    return nlohmann::json::parse(text, limit_depth);
  } catch (const TooDeep&) {
    throw UsageError(what + " is not valid JSON (nested deeper than " + std::to_string(kMaxJsonDepth) + " levels)" +
                     fix);
  } catch (const nlohmann::json::parse_error& e) {
    throw UsageError(what + " is not valid JSON (syntax error at byte " + std::to_string(e.byte) + ")" + fix);
  } catch (const nlohmann::json::exception&) {  // out_of_range: a number beyond double, e.g. 3E311 (fuzzing)
    throw UsageError(what + " is not valid JSON (a number out of range)" + fix);
  }
}

bool is_int32(const nlohmann::json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>() <= uint64_t(std::numeric_limits<int>::max());
  if (!v.is_number_integer()) return false;
  const auto i = v.get<int64_t>();
  return i >= std::numeric_limits<int>::min() && i <= std::numeric_limits<int>::max();
}

}  // namespace autoguide
