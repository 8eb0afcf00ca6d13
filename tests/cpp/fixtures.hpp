// Where ctest's fixture step (tests/python/model_fixtures.py) left the tiny exported nets and tensors.
#pragma once
#include <torch/types.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

inline std::string fixture(const std::string& name) {
  const char* dir = std::getenv("AUTOGUIDE_FIXTURES");
  if (!dir) throw std::runtime_error("AUTOGUIDE_FIXTURES is not set; run the tests through ctest");
  return std::string(dir) + "/" + name;
}

// max |a - b| / max |b|: the error measure of the tests against a reference tensor b.
inline double max_relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max()).item<double>();
}
