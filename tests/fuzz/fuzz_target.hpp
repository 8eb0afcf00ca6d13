// The harnesses share one executable, so LibTorch's headers are compiled once for all of them (seven builds of
// them took minutes of CI under the sanitizers). Each harness registers its entry point under its name;
// main.cpp runs the one the executable was started as: fuzz_<name>, a link CMake makes to autoguide_fuzz.
#pragma once
#include <cstddef>
#include <cstdint>

using FuzzTarget = int (*)(const uint8_t* data, size_t size);

// Returns true, so that a harness can register from a namespace-scope initialiser.
bool register_fuzz_target(const char* name, FuzzTarget target);
