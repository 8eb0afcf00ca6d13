#include "autoguide/phema.hpp"

#include <caffe2/serialize/inline_container.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include "autoguide/error.hpp"
#include "json_input.hpp"
#include "lazy_archive.hpp"
#include "sha256.hpp"

namespace autoguide {

namespace {

const char* const kRemake = "; re-create it with scripts/export_phema_set.py";

std::string fixed3(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

std::string shortest(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// The cubic of Eq. 5 rearranged, f(gamma) = gamma^3 + 7 gamma^2 + (16 - s^-2) gamma + (12 - s^-2), and f'.
double cubic(double g, double t) { return ((g + 7) * g + (16 - t)) * g + (12 - t); }
double cubic_slope(double g, double t) { return (3 * g + 14) * g + (16 - t); }

// Solves A x = b (A n x n, row-major) by Gaussian elimination with partial pivoting, as LAPACK's gesv does.
std::vector<double> solve_linear(std::vector<double> a, std::vector<double> b) {
  const size_t n = b.size();
  for (size_t col = 0; col < n; ++col) {
    size_t pivot = col;
    for (size_t r = col + 1; r < n; ++r)
      if (std::abs(a[r * n + col]) > std::abs(a[pivot * n + col])) pivot = r;
    if (a[pivot * n + col] == 0) throw UsageError("the snapshots' EMA profiles are linearly dependent");
    if (pivot != col) {
      for (size_t c = 0; c < n; ++c) std::swap(a[col * n + c], a[pivot * n + c]);
      std::swap(b[col], b[pivot]);
    }
    for (size_t r = col + 1; r < n; ++r) {
      const double f = a[r * n + col] / a[col * n + col];
      for (size_t c = col; c < n; ++c) a[r * n + c] -= f * a[col * n + c];
      b[r] -= f * b[col];
    }
  }
  std::vector<double> x(n);
  for (size_t i = n; i-- > 0;) {
    double s = b[i];
    for (size_t c = i + 1; c < n; ++c) s -= a[i * n + c] * x[c];
    x[i] = s / a[i * n + i];
  }
  return x;
}

// The submodule that owns a dotted state-dict name ("unet.enc.8x8_conv.weight"), and the name's last part.
torch::jit::Module owner_of(torch::jit::Module m, const std::string& dotted, std::string& leaf) {
  size_t start = 0;
  for (size_t dot; (dot = dotted.find('.', start)) != std::string::npos; start = dot + 1)
    m = m.attr(dotted.substr(start, dot - start)).toModule();
  leaf = dotted.substr(start);
  return m;
}

// The snapshots' profiles from the metadata, checked: positive lengths, stds of power-function EMAs, in the
// order (length, std), every length holding every std, at least two stds.
std::vector<EmaProfile> read_profiles(const nlohmann::json& meta, const std::string& path) {
  if (!meta.contains("snapshots") || !meta["snapshots"].is_array() || meta["snapshots"].size() < 2)
    throw UsageError("'" + path + "' lists fewer than 2 snapshots" + kRemake);
  std::vector<EmaProfile> profiles;
  for (const auto& s : meta["snapshots"]) {
    const bool ok = s.is_object() && s.contains("nimg") && s["nimg"].is_number_integer() && s["nimg"].get<int64_t>() > 0 &&
                    s.contains("ema_std") && s["ema_std"].is_number() && s["ema_std"].get<double>() > 0 &&
                    s["ema_std"].get<double>() < kEmaStdLimit;
    if (!ok) throw UsageError("'" + path + "' lists a snapshot without a positive nimg and an EMA std in (0, 0.289)" + kRemake);
    profiles.push_back({static_cast<double>(s["nimg"].get<int64_t>()), s["ema_std"].get<double>()});
  }
  std::map<double, std::set<double>> stds_at;
  std::set<double> stds;
  for (size_t k = 0; k < profiles.size(); ++k) {
    const EmaProfile& p = profiles[k];
    if (k && std::make_pair(p.nimg, p.std) <= std::make_pair(profiles[k - 1].nimg, profiles[k - 1].std))
      throw UsageError("'" + path + "' lists its snapshots out of order or twice" + kRemake);
    stds_at[p.nimg].insert(p.std);
    stds.insert(p.std);
  }
  if (stds.size() < 2)
    throw UsageError("'" + path + "' holds one EMA profile (std " + fixed3(*stds.begin()) +
                     "); post-hoc EMA needs two: convert a run's snapshots of both profiles");
  for (const auto& [nimg, have] : stds_at)
    for (double s : stds)
      if (!have.count(s))
        throw UsageError("'" + path + "' lacks the EMA " + fixed3(s) + " snapshot at " +
                         std::to_string(static_cast<int64_t>(nimg)) + " images; convert the run with both profiles "
                         "at every length" + std::string(kRemake).substr(1));
  return profiles;
}

// Each snapshot's weights, checked against the net's parameters and buffers: the same names and shapes, one
// floating dtype per name across snapshots.
std::vector<c10::Dict<std::string, at::Tensor>> read_weights(const torch::jit::Module& set, const torch::jit::Module& net,
                                                             size_t count, const std::string& path) {
  std::map<std::string, at::Tensor> expected;
  for (const auto& p : net.named_parameters(true)) expected[p.name] = p.value;
  for (const auto& b : net.named_buffers(true)) expected[b.name] = b.value;
  if (!set.hasattr("snapshots") || !set.attr("snapshots").isList())
    throw UsageError("'" + path + "' holds no snapshot weights" + kRemake);
  const c10::List<c10::IValue> list = set.attr("snapshots").toList();
  if (list.size() != count)
    throw UsageError("'" + path + "' holds " + std::to_string(list.size()) + " snapshots' weights but lists " +
                     std::to_string(count) + kRemake);
  std::vector<c10::Dict<std::string, at::Tensor>> weights;
  for (size_t k = 0; k < list.size(); ++k) {
    const c10::IValue v = list.get(k);
    if (!v.isGenericDict()) throw UsageError("'" + path + "': snapshot " + std::to_string(k) + " is not a dict of tensors" + kRemake);
    auto d = c10::impl::toTypedDict<std::string, at::Tensor>(v.toGenericDict());
    if (d.size() != expected.size())
      throw UsageError("'" + path + "': snapshot " + std::to_string(k) + " holds " + std::to_string(d.size()) +
                       " tensors, the net " + std::to_string(expected.size()) + kRemake);
    for (const auto& [name, want] : expected) {
      if (!d.contains(name)) throw UsageError("'" + path + "': snapshot " + std::to_string(k) + " lacks " + name + kRemake);
      const at::Tensor t = d.at(name);
      if (!t.is_floating_point() || t.sizes() != want.sizes() || (k && t.scalar_type() != weights[0].at(name).scalar_type()))
        throw UsageError("'" + path + "': snapshot " + std::to_string(k) + "'s " + name +
                         " does not fit the net (shape, dtype)" + kRemake);
    }
    weights.push_back(d);
  }
  return weights;
}

}  // namespace

// Newton's method from above the largest root: f is convex and increasing there, so the iterates fall
// monotonically onto it (the root numpy's np.roots finds, to the last bits).
double ema_exponent(double std) {
  if (!(std > 0 && std < kEmaStdLimit))
    throw FieldError("ema_std", "EMA std " + shortest(std) + " is outside (0, 0.2887)");
  const double t = 1 / (std * std);
  double g = std::sqrt(t) + 8;
  for (int i = 0; i < 200; ++i) {
    const double next = g - cubic(g, t) / cubic_slope(g, t);
    if (!(next < g)) break;
    g = next;
  }
  return g;
}

// (g_a+1)(g_b+1) / (g_a+g_b+1) * min(t)^(g_a+g_b+1) / (t_a^(g_a+1) t_b^(g_b+1)), in ratios (Algorithm 3).
double profile_dot(const EmaProfile& a, const EmaProfile& b) {
  const double ga = ema_exponent(a.std), gb = ema_exponent(b.std);
  const double t_ratio = a.nimg / b.nimg;
  const double t_exp = a.nimg < b.nimg ? gb : -ga;
  return (ga + 1) * (gb + 1) * std::pow(t_ratio, t_exp) / ((ga + gb + 1) * std::max(a.nimg, b.nimg));
}

// Algorithm 3: A x = b with A the stored profiles' Gram matrix and b their products with the wanted one,
// x normalised to sum to 1; the residual from the same products, ||p^ - p||^2 = x'Ax - 2x'b + <p,p>.
PosthocFit solve_posthoc(const std::vector<EmaProfile>& stored, const EmaProfile& wanted) {
  const size_t n = stored.size();
  std::vector<double> gram(n * n), cross(n);
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < n; ++j) gram[i * n + j] = profile_dot(stored[i], stored[j]);
    cross[i] = profile_dot(stored[i], wanted);
  }
  PosthocFit fit;
  fit.coefficients = solve_linear(gram, cross);
  double sum = 0;
  for (double c : fit.coefficients) sum += c;
  for (double& c : fit.coefficients) c /= sum;
  const double self = profile_dot(wanted, wanted);
  double err = self;
  for (size_t i = 0; i < n; ++i) {
    err -= 2 * fit.coefficients[i] * cross[i];
    for (size_t j = 0; j < n; ++j) err += fit.coefficients[i] * gram[i * n + j] * fit.coefficients[j];
  }
  fit.residual = std::sqrt(std::max(err, 0.0) / self);
  return fit;
}

SnapshotSet SnapshotSet::load(const std::string& path, const torch::Device& device, int64_t resident_bytes) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw UsageError("snapshot set '" + path + "' not found; make one with scripts/export_phema_set.py");
  SnapshotSet s;
  torch::jit::ExtraFilesMap extra{{kMetadataName, ""}};
  // The file is its weights (stored uncompressed), so its size says whether they fit.
  const bool stream = static_cast<int64_t>(std::filesystem::file_size(path, ec)) > resident_bytes;
  try {
    if (stream) {
      s.lazy_ = LazyArchive::load(path, extra);  // on the CPU: each snapshot goes to the device as it is read
      s.module_ = s.lazy_->module();
    } else {
      s.module_ = torch::jit::load(path, device, extra);
    }
  } catch (const UsageError&) {
    throw;
  } catch (const std::exception&) {
    throw UsageError("'" + path + "' is not a readable snapshot set (corrupt or truncated?)" + std::string(kRemake));
  }
  if (extra[kMetadataName].empty()) throw UsageError("'" + path + "' carries no " + std::string(kMetadataName) + kRemake);
  s.info_ = parse_model_info(extra[kMetadataName], path);
  const nlohmann::json& meta = s.info_.raw;
  if (!meta.contains("kind") || meta["kind"] != "snapshot_set")
    throw UsageError("'" + path + "' is a single net, not a snapshot set; give a set from scripts/export_phema_set.py "
                     "or drop the EMA length");
  s.profiles_ = read_profiles(meta, path);
  if (!s.module_.hasattr("net") || !s.module_.attr("net").isModule())
    throw UsageError("'" + path + "' holds no network" + kRemake);
  s.weights_ = read_weights(s.module_, s.module_.attr("net").toModule(), s.profiles_.size(), path);
  s.path_ = path;
  s.sha256_ = sha256_file(path);
  s.device_ = device;
  return s;
}

void check_ema_std(double std, const std::string& field) {
  if (!(std >= kMinEmaStd && std <= kMaxEmaStd))
    throw FieldError(field, field + " " + shortest(std) + " is outside the EMA lengths a snapshot set "
                     "represents; choose " + field + " in [" + fixed3(kMinEmaStd) + ", " + fixed3(kMaxEmaStd) + "]");
}

PosthocEma SnapshotSet::plan(const EmaRequest& request, const std::string& field) const {
  check_ema_std(request.std, field);
  double nimg = profiles_.back().nimg;
  if (request.kimg) {
    std::set<int64_t> lengths;
    for (const auto& p : profiles_) {
      lengths.insert(static_cast<int64_t>(p.nimg) / 1000);
      if (static_cast<int64_t>(p.nimg) / 1000 == *request.kimg) nimg = p.nimg;
    }
    if (!lengths.count(*request.kimg)) {
      std::string listed;
      for (int64_t k : lengths) listed += (listed.empty() ? "" : ", ") + std::to_string(k);
      throw FieldError(field, field + " length kimg " + std::to_string(*request.kimg) +
                                  (*request.kimg < *lengths.begin() ? " is before the first snapshot" : " is no snapshot's length") +
                                  " of " + path_ + "; choose one of kimg " + listed);
    }
  }
  std::vector<EmaProfile> used;
  for (const auto& p : profiles_)
    if (p.nimg <= nimg) used.push_back(p);
  const PosthocFit fit = solve_posthoc(used, {nimg, request.std});
  return {request.std, static_cast<int64_t>(nimg), fit.residual, request.keep_fp32 ? "fp32" : "stored", fit.coefficients};
}

Denoiser SnapshotSet::build(const PosthocEma& plan, NetPrecision precision, bool fast) const {
  return std::move(build_all({plan}, precision, fast).front());
}

std::vector<Denoiser> SnapshotSet::build_all(const std::vector<PosthocEma>& plans, NetPrecision precision,
                                             bool fast) const {
  const torch::jit::Module tmpl = module_.attr("net").toModule();
  // Streamed, the template's own tensors have no bytes (they are the last snapshot's): share them, as every
  // parameter and buffer is replaced below; resident, a deep copy as before.
  std::vector<torch::jit::Module> nets;
  std::vector<std::map<std::string, at::Tensor>> sums(plans.size()), buffers(plans.size());
  size_t needed = 0;
  for (const PosthocEma& plan : plans) {
    nets.push_back(tmpl.clone(streamed()));
    needed = std::max(needed, plan.coefficients.size());
  }
  const auto params = tmpl.named_parameters(true);
  const auto bufs = tmpl.named_buffers(true);
  {
    c10::InferenceMode guard;
    for (size_t k = 0; k < needed; ++k) {
      const auto& snap = weights_[k];
      if (lazy_)
        for (const auto& e : snap) lazy_->fill(e.value());
      // A streamed snapshot is read on the CPU; the sums live on the device, as a resident set's do.
      auto weight = [&](const std::string& name) { return lazy_ ? snap.at(name).to(device_) : snap.at(name); };
      for (const auto& p : params) {
        // reconstruct_phema.py: theta += theta_k * c_k in float32, snapshot by snapshot, then the stored dtype.
        // The float32 copy of theta_k is made once for every plan: the same values as one per plan.
        const at::Tensor theta = weight(p.name).to(torch::kFloat32);
        for (size_t j = 0; j < plans.size(); ++j) {
          const size_t used = plans[j].coefficients.size();
          if (k >= used) continue;
          at::Tensor& acc = sums[j][p.name];
          if (!acc.defined()) acc = torch::zeros(p.value.sizes(), p.value.options().dtype(torch::kFloat32).device(device_));
          acc += theta * plans[j].coefficients[k];
          if (k + 1 == used && plans[j].precision != "fp32") acc = acc.to(snap.at(p.name).scalar_type());
        }
      }
      // Buffers from the last snapshot each plan uses.
      for (size_t j = 0; j < plans.size(); ++j)
        if (k + 1 == plans[j].coefficients.size())
          for (const auto& b : bufs) buffers[j][b.name] = weight(b.name).clone();
      if (lazy_)
        for (const auto& e : snap) lazy_->empty(e.value());
    }
  }
  std::vector<Denoiser> out;
  for (size_t j = 0; j < plans.size(); ++j) {
    std::string leaf;
    for (const auto& p : params) owner_of(nets[j], p.name, leaf).setattr(leaf, sums[j][p.name]);
    for (const auto& b : bufs) owner_of(nets[j], b.name, leaf).setattr(leaf, buffers[j][b.name]);
    sums[j].clear(), buffers[j].clear();
    ModelInfo info = info_;
    info.ema_std = plans[j].std;
    info.training_kimg = static_cast<double>(plans[j].nimg / 1000);
    out.push_back(Denoiser::from_module(std::move(nets[j]), std::move(info), path_, sha256_, device_, precision, fast,
                                        plans[j]));
  }
  return out;
}

bool is_snapshot_set(const std::string& path) {
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    const std::string record = std::string("extra/") + kMetadataName;
    if (!reader.hasRecord(record)) return false;
    auto [data, size] = reader.getRecord(record);
    const std::string text(static_cast<const char*>(data.get()), size);
    const auto j = nlohmann::json::parse(text, nullptr, false);
    return j.is_object() && j.contains("kind") && j["kind"] == "snapshot_set";
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace autoguide
