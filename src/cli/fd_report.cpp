#include "fd_report.hpp"

#include <cmath>
#include <cstdio>

#include "autoguide/format.hpp"

namespace autoguide::cli {

namespace {

// 4 significant digits: enough to read an interval whose width is a few percent of the value.
std::string short_number(double v) {
  char s[32];
  std::snprintf(s, sizeof s, "%.4g", v);
  return s;
}

nlohmann::json number(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }

std::string bounds(const FdInterval& i) { return "[" + short_number(i.lo) + ", " + short_number(i.hi) + "]"; }

bool has_interval(const FdInterval& i) { return std::isfinite(i.lo) && std::isfinite(i.hi); }

std::string cell(double v) { return std::isfinite(v) ? format_number(v) : ""; }

}  // namespace

std::string interval_text(const FdInterval& i) {
  return has_interval(i) ? short_number(i.value) + " " + bounds(i) : short_number(i.value);
}

std::string how_estimated(const FdInterval& i) {
  char s[64];
  std::snprintf(s, sizeof s, "%g%%, %d resamples", i.confidence * 100, i.resamples);
  return s;
}

std::string estimate_cells(const std::string& label, const FdEstimate& e) {
  std::string s = label + " " + format_number(e.fd.value);
  if (has_interval(e.fd)) s += " " + bounds(e.fd);
  // "fd" -> "fd-inf", "fd[det]" -> "fd-inf[det]"
  if (e.infinity) s += "\t" + label.substr(0, 2) + "-inf" + label.substr(2) + " " + interval_text(*e.infinity);
  return s;
}

nlohmann::json interval_json(const FdInterval& i) {
  return {{"value", i.value},           {"se", number(i.se)},     {"lo", number(i.lo)}, {"hi", number(i.hi)},
          {"confidence", i.confidence}, {"resamples", i.resamples}, {"n", i.n}};
}

nlohmann::json estimate_json(const FdEstimate& e) {
  nlohmann::json j = interval_json(e.fd);
  j["fd_inf"] = nullptr;
  if (e.infinity) {
    nlohmann::json inf = interval_json(*e.infinity);
    inf["k"] = e.infinity->k, inf["sizes"] = e.infinity->sizes, inf["fds"] = e.infinity->fds;
    j["fd_inf"] = inf;
  }
  return j;
}

nlohmann::json difference_json(const FdDifference& d, const std::string& a, const std::string& b) {
  nlohmann::json j = interval_json(d);
  const Verdict v = verdict(d);
  j["a"] = a, j["b"] = b, j["fd_a"] = d.fd_a, j["fd_b"] = d.fd_b;
  j["verdict"] = v == Verdict::FirstBetter ? "a" : v == Verdict::SecondBetter ? "b" : "unresolved";
  return j;
}

std::string verdict_text(const FdDifference& d, const std::string& a, const std::string& b) {
  FdInterval lead = d;  // how far the better one is ahead, positive
  switch (verdict(d)) {
    case Verdict::FirstBetter:
      lead.value = -d.value, lead.lo = -d.hi, lead.hi = -d.lo;
      return a + " beats " + b + " by " + interval_text(lead);
    case Verdict::SecondBetter:
      return b + " beats " + a + " by " + interval_text(lead);
    case Verdict::Unresolved:
      break;
  }
  return a + " vs " + b + ": not resolved at " + std::to_string(d.n) + " samples (FD difference " +
         interval_text(d) + ")";
}

nlohmann::json bootstrap_json(const FdSettings& s) {
  return {{"resamples", s.resamples},
          {"confidence", s.confidence},
          {"seed", s.seed},
          {"fd_inf_min_images", kFdInfinityMinImages}};
}

std::vector<std::string> estimate_csv_header(const std::string& prefix) {
  return {prefix, prefix + "_lo", prefix + "_hi", prefix + "-inf", prefix + "-inf_lo", prefix + "-inf_hi"};
}

std::vector<std::string> estimate_csv(const FdEstimate& e) {
  const double nan = std::nan("");
  const FdInterval& inf = e.infinity ? static_cast<const FdInterval&>(*e.infinity) : FdInterval{nan, nan, nan, nan};
  return {cell(e.fd.value), cell(e.fd.lo), cell(e.fd.hi), cell(inf.value), cell(inf.lo), cell(inf.hi)};
}

}  // namespace autoguide::cli
