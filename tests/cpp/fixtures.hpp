// Where ctest's fixture step (tests/python/model_fixtures.py) left the tiny exported nets and tensors.
#pragma once
#include <cstdlib>
#include <stdexcept>
#include <string>

inline std::string fixture(const std::string& name) {
  const char* dir = std::getenv("AUTOGUIDE_FIXTURES");
  if (!dir) throw std::runtime_error("AUTOGUIDE_FIXTURES is not set; run the tests through ctest");
  return std::string(dir) + "/" + name;
}
