// Tensors equal bit for bit (NaN payloads included, which torch::equal would call different).
#pragma once
#include <torch/torch.h>

#include <cstring>

inline bool same_bytes(const torch::Tensor& a, const torch::Tensor& b) {
  return a.sizes() == b.sizes() && a.scalar_type() == b.scalar_type() &&
         (a.nbytes() == 0 || std::memcmp(a.data_ptr(), b.data_ptr(), a.nbytes()) == 0);
}
