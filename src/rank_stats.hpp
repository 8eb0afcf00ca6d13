// Feature statistics of a set whose parts were measured by different ranks: the statistics of the union,
// equal to one process's to rounding whatever the number of ranks.
#pragma once
#include "autoguide/distributed.hpp"
#include "autoguide/metrics.hpp"

namespace autoguide {

// Counts and feature sums (Σf) all-reduced in float64 give the global mean μ; then each rank's scatter about
// μ, which is its own scatter plus n_r (m_r − μ)(m_r − μ)ᵀ exactly, is all-reduced: the second moment never
// goes through Σffᵀ − Nμμᵀ, whose cancellation would cost digits. `dim`: the feature count, for ranks that
// measured nothing. `group` null: one process, `acc` is the whole set.
StatsAccumulator merge_stats(Group* group, const StatsAccumulator& acc, int64_t dim);

}  // namespace autoguide
