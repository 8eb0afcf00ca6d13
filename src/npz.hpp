// NumPy .npz archives: a ZIP of .npy members. We write them stored (what numpy.savez writes); we read stored
// and deflated members (numpy.savez_compressed, pytorch-fid's and TTUR's statistics), so numpy.load(path)
// reads ours and we read numpy's.
#pragma once
#include <torch/types.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace autoguide {

// Member names without ".npy"; numpy.load(path)[name] gives the array back.
using NpzArrays = std::vector<std::pair<std::string, torch::Tensor>>;

std::string encode_npz(const NpzArrays& arrays);
void write_npz(const std::string& path, const NpzArrays& arrays);

// Throws UsageError when the file is not a ZIP, is damaged (CRC, truncation, a deflate stream that does not
// inflate to its declared size), uses another compression method or ZIP64, declares a member over 1 GiB, or a
// member is not a usable .npy array.
std::map<std::string, torch::Tensor> read_npz(const std::string& path);
// The same from the archive's bytes; `name` appears in error messages.
std::map<std::string, torch::Tensor> decode_npz(const std::string& bytes, const std::string& name);

}  // namespace autoguide
