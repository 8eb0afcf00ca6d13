#include "autoguide/guidance_search.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <set>
#include <tuple>

#include "autoguide/error.hpp"

namespace autoguide {

namespace {

constexpr size_t kShared = std::numeric_limits<size_t>::max();  // the candidate of w = 1: no guide, one setting

// Lattice positions k (weights w_lo + k * w_step), exact integers so that a point measured in an earlier round is
// recognised as the same point.
struct Lattice {
  double lo = 1, step = 0.05;
  int64_t last = 0;  // the largest k within [w_lo, w_hi]

  explicit Lattice(const SearchOptions& o) : lo(o.w_lo), step(o.w_step) {
    last = o.w_hi > o.w_lo ? static_cast<int64_t>(std::floor((o.w_hi - o.w_lo) / o.w_step + 1e-9)) : 0;
  }
  // Rounded to 12 significant digits, so that 1 + 12 * 0.05 reads as 1.6, as a user would type it.
  double weight(int64_t k) const {
    char text[32];
    std::snprintf(text, sizeof text, "%.12g", lo + static_cast<double>(k) * step);
    return std::stod(text);
  }
  // The first round's spacing: the smallest power of two that puts at most five intervals on the range.
  int64_t first_step() const {
    int64_t s = 1;
    while (last / s > 5) s *= 2;
    return s;
  }
  std::vector<int64_t> first_positions() const {
    std::vector<int64_t> ks;
    const int64_t s = first_step();
    for (int64_t k = 0; k <= last; k += s) ks.push_back(k);
    if (ks.back() != last) ks.push_back(last);
    return ks;
  }
};

// Where a point's images are counted: points at w = 1 share theirs.
using PointKey = std::pair<size_t, int64_t>;

struct CandidateState {
  bool alive = true, converged = false;
  bool set_aside = false;        // left out of later rounds for the budget (not shown worse: not dropped)
  int64_t centre = 0, step = 0;  // lattice positions
  double fd = 0;                 // at the centre, in the last round it was measured in
  int64_t last_n = 0;            // that round's seeds, and the points it measured there with their FDs
  std::vector<std::pair<int64_t, double>> last;
  bool active() const { return alive && !set_aside; }
};

using Plan = std::vector<std::pair<size_t, std::vector<int64_t>>>;

class Search {
 public:
  Search(const SearchOptions& o, SearchMeasure& measure) : o_(o), lattice_(o), measure_(measure) {
    for (const auto& c : o.candidates)
      if (std::find(groups_.begin(), groups_.end(), c.group) == groups_.end()) groups_.push_back(c.group);
    state_.resize(o.candidates.size());
  }

  SearchResult run(const std::function<void(const SearchRound&)>& on_round);

 private:
  SearchPoint point(size_t c, int64_t k) const { return {c, lattice_.weight(k)}; }
  PointKey key(size_t c, int64_t k) const {
    if (lattice_.weight(k) != 1) return {c, k};
    size_t first = 0;  // the first candidate of the same main net stands for all of them
    while (o_.candidates[first].main != o_.candidates[c].main) ++first;
    return {kShared - first, k};
  }
  // The positions a candidate measures this round (none: its w is found and no rival is left to compare).
  std::vector<int64_t> positions(size_t c, bool first) const;
  size_t active_in(const std::string& group) const;
  Plan next_plan(bool first) const;
  // Images that giving every (candidate, positions) n seeds would sample.
  int64_t cost(const Plan& plan, int64_t n) const;
  int64_t final_reserve(const Plan& plan, int64_t n) const;
  bool fits(const Plan& plan, int64_t n, int64_t budget) const;
  bool set_aside_one(Plan& plan);
  int64_t extend(const Plan& plan, int64_t n);
  SearchRound round(const Plan& plan, int64_t n, bool first);
  void eliminate(SearchRound& r, int64_t n);
  Plan finalists(const std::string& group) const;
  void finish(SearchResult& result);
  bool done() const;

  const SearchOptions& o_;
  Lattice lattice_;
  SearchMeasure& measure_;
  std::vector<std::string> groups_;
  std::vector<CandidateState> state_;
  std::map<PointKey, int64_t> have_;  // seeds each point has images of
  int64_t images_ = 0;
};

std::vector<int64_t> Search::positions(size_t c, bool first) const {
  if (first) return lattice_.first_positions();
  const CandidateState& s = state_[c];
  // A converged candidate is measured on (its centre only) while rivals remain to be compared with it.
  if (s.converged) return active_in(o_.candidates[c].group) > 1 ? std::vector<int64_t>{s.centre} : std::vector<int64_t>{};
  std::vector<int64_t> ks;
  for (int64_t k : {s.centre - s.step, s.centre, s.centre + s.step})
    if (k >= 0 && k <= lattice_.last) ks.push_back(k);
  return ks;
}

size_t Search::active_in(const std::string& group) const {
  size_t count = 0;
  for (size_t c = 0; c < state_.size(); ++c) count += state_[c].active() && o_.candidates[c].group == group;
  return count;
}

Plan Search::next_plan(bool first) const {
  Plan p;
  for (size_t c = 0; c < state_.size(); ++c)
    if (state_[c].active())
      if (std::vector<int64_t> ks = positions(c, first); !ks.empty()) p.emplace_back(c, std::move(ks));
  return p;
}

int64_t Search::cost(const Plan& plan, int64_t n) const {
  std::set<PointKey> seen;
  int64_t images = 0;
  for (const auto& [c, ks] : plan)
    for (int64_t k : ks) {
      const PointKey pk = key(c, k);
      if (!seen.insert(pk).second) continue;
      const auto it = have_.find(pk);
      images += std::max<int64_t>(0, n - (it == have_.end() ? 0 : it->second));
    }
  return images;
}

// The final's images after a round of `plan` at n: per group, its finalists (kFinalistsPerGroup points) taken
// from the seeds of the group's last round to final_num.
int64_t Search::final_reserve(const Plan& plan, int64_t n) const {
  int64_t images = 0;
  for (const std::string& g : groups_) {
    int64_t points = 0, have = 0;
    for (const auto& [c, ks] : plan)
      if (o_.candidates[c].group == g) points += static_cast<int64_t>(ks.size()), have = n;
    if (points == 0) {  // not in this round: its last round's points
      for (size_t c = 0; c < state_.size(); ++c)
        if (state_[c].alive && o_.candidates[c].group == g) have = std::max(have, state_[c].last_n);
      for (size_t c = 0; c < state_.size(); ++c)
        if (state_[c].alive && o_.candidates[c].group == g && state_[c].last_n == have)
          points += static_cast<int64_t>(state_[c].last.size());
    }
    images += std::min<int64_t>(points, kFinalistsPerGroup) * std::max<int64_t>(0, o_.final_num - have);
  }
  return images;
}

bool Search::fits(const Plan& plan, int64_t n, int64_t budget) const {
  return images_ + cost(plan, n) + final_reserve(plan, n) <= budget;
}

// When a round of every survivor does not fit the budget, the rounds go on with fewer (successive halving's
// budget, Li et al. 2018): the worst of the group with the most candidates in the round is set aside (so never a
// group's leader while it has rivals); with one per group left, the last group's. It stays a finalist only if its group's rounds end
// at its seeds; it is not dropped, as nothing showed it worse.
bool Search::set_aside_one(Plan& plan) {
  std::map<std::string, std::vector<size_t>> in_round;  // plan entries per group
  for (size_t j = 0; j < plan.size(); ++j) in_round[o_.candidates[plan[j].first].group].push_back(j);
  std::optional<size_t> out;
  size_t most = 1;
  for (const std::string& g : groups_) {
    const auto& js = in_round[g];
    if (js.size() <= most) continue;
    most = js.size();
    out = *std::max_element(js.begin(), js.end(),
                            [&](size_t a, size_t b) { return state_[plan[a].first].fd < state_[plan[b].first].fd; });
  }
  if (!out && !plan.empty()) out = plan.size() - 1;  // one per group: the last group's candidate
  if (!out) return false;
  state_[plan[*out].first].set_aside = true;
  plan.erase(plan.begin() + static_cast<std::ptrdiff_t>(*out));
  return true;
}

int64_t Search::extend(const Plan& plan, int64_t n) {
  const int64_t images = cost(plan, n);
  std::vector<SearchPoint> points;
  std::set<PointKey> seen;
  for (const auto& [c, ks] : plan)
    for (int64_t k : ks)
      if (seen.insert(key(c, k)).second && have_[key(c, k)] < n) points.push_back(point(c, k));
  if (!points.empty()) measure_.extend(points, n);
  for (const PointKey& pk : seen) have_[pk] = std::max(have_[pk], n);
  images_ += images;
  return images;
}

SearchRound Search::round(const Plan& plan, int64_t n, bool first) {
  SearchRound r;
  r.n = n;
  r.images = extend(plan, n);
  r.candidates.resize(state_.size());
  for (size_t c = 0; c < state_.size(); ++c)
    r.candidates[c].out = !state_[c].alive ? "dropped" : state_[c].set_aside ? "set aside" : "w found";
  for (const auto& [c, ks] : plan) {
    CandidateState& s = state_[c];
    CandidateRound& cr = r.candidates[c];
    cr.measured = true;
    cr.out.clear();
    cr.centre = lattice_.weight(first ? 0 : s.centre);
    cr.step = static_cast<double>(first ? lattice_.first_step() : s.step) * o_.w_step;
    size_t best = 0;
    for (size_t j = 0; j < ks.size(); ++j) {
      cr.weights.push_back(lattice_.weight(ks[j]));
      cr.fds.push_back(measure_.estimate(point(c, ks[j]), n));
      if (cr.fds[j].fd.value < cr.fds[best].fd.value) best = j;
    }
    // Compass step: a better neighbour moves the centre; the centre staying best narrows the step, and at one
    // lattice step it is the answer.
    if (first) {
      s.centre = ks[best];
      s.step = std::max<int64_t>(1, lattice_.first_step() / 2);
      s.converged = lattice_.first_step() == 1;
    } else if (!s.converged) {
      if (ks[best] != s.centre) {
        s.centre = ks[best];
      } else if (s.step == 1) {
        s.converged = true;
      } else {
        s.step /= 2;
      }
    }
    cr.best_w = lattice_.weight(s.centre);
    s.last_n = n;
    s.last.clear();
    for (size_t j = 0; j < ks.size(); ++j) {
      s.last.emplace_back(ks[j], cr.fds[j].fd.value);
      if (ks[j] == s.centre) s.fd = cr.fds[j].fd.value;
    }
    cr.at_edge = lattice_.last > 0 && (s.centre == 0 || s.centre == lattice_.last);
    cr.converged = s.converged;
  }
  eliminate(r, n);
  return r;
}

// Within each group: the leader is the survivor of lowest FD at its best weight; a survivor whose paired
// difference to it lies wholly above 0 is dropped.
void Search::eliminate(SearchRound& r, int64_t n) {
  for (const std::string& g : groups_) {
    std::optional<size_t> leader;
    auto best_fd = [&](size_t c) {
      const CandidateRound& cr = r.candidates[c];
      const auto it = std::find(cr.weights.begin(), cr.weights.end(), cr.best_w);
      return cr.fds[static_cast<size_t>(it - cr.weights.begin())].fd.value;
    };
    auto in_round = [&](size_t c) { return r.candidates[c].measured && o_.candidates[c].group == g; };
    for (size_t c = 0; c < state_.size(); ++c)
      if (in_round(c) && (!leader || best_fd(c) < best_fd(*leader))) leader = c;
    if (!leader) continue;
    r.candidates[*leader].leader = true;
    const SearchPoint lead = point(*leader, state_[*leader].centre);
    std::vector<size_t> rivals;
    for (size_t c = 0; c < state_.size(); ++c)
      if (in_round(c) && c != *leader) rivals.push_back(c);
    for (size_t c : rivals) {
      const FdDifference d = measure_.difference(point(c, state_[c].centre), lead, n);
      CandidateRound& cr = r.candidates[c];
      cr.vs_leader = d;
      // Bonferroni over the group's comparisons: the leader is the lowest of several noisy FDs, so each rival's
      // difference to it leans positive; m tests at level (1 - confidence) / m keep the chance of dropping the
      // true best within 1 - confidence per round.
      const double m = static_cast<double>(rivals.size());
      cr.drop_bound = d.value - normal_z(1 - (1 - d.confidence) / m) * d.se;
      if (std::isfinite(cr.drop_bound) && cr.drop_bound > 0) state_[c].alive = false, cr.dropped = true;
    }
  }
}

bool Search::done() const {
  for (const std::string& g : groups_) {
    int alive = 0;
    for (size_t c = 0; c < state_.size(); ++c)
      if (state_[c].active() && o_.candidates[c].group == g) {
        if (!state_[c].converged) return false;
        ++alive;
      }
    if (alive > 1) return false;
  }
  return true;
}

// A group's finalists: its kFinalistsPerGroup points of lowest FD on the seeds of its last round (two candidates'
// best weights, or one candidate's two best: the closest call the rounds left, settled on final_num seeds).
Plan Search::finalists(const std::string& group) const {
  int64_t n = 0;
  for (size_t c = 0; c < state_.size(); ++c)
    if (state_[c].alive && o_.candidates[c].group == group) n = std::max(n, state_[c].last_n);
  std::vector<std::tuple<double, size_t, int64_t>> points;  // FD, candidate, position
  std::set<PointKey> seen;
  for (size_t c = 0; c < state_.size(); ++c)
    if (state_[c].alive && o_.candidates[c].group == group && state_[c].last_n == n)
      for (const auto& [k, fd] : state_[c].last)
        if (seen.insert(key(c, k)).second) points.emplace_back(fd, c, k);
  std::stable_sort(points.begin(), points.end(), [](const auto& a, const auto& b) { return std::get<0>(a) < std::get<0>(b); });
  points.resize(std::min(points.size(), kFinalistsPerGroup));
  Plan out;
  for (const auto& [fd, c, k] : points) out.emplace_back(c, std::vector<int64_t>{k});
  return out;
}

void Search::finish(SearchResult& result) {
  Plan plan;
  for (const std::string& g : groups_)
    for (auto& entry : finalists(g)) plan.push_back(std::move(entry));
  extend(plan, o_.final_num);
  // FD-inf ranks where it was estimated: it removes the bias that FD at a finite N carries.
  auto score = [](const FdEstimate& e) { return e.infinity ? e.infinity->value : e.fd.value; };
  for (const std::string& g : groups_) {
    std::vector<FinalEstimate> group;
    for (const auto& [c, ks] : plan)
      if (o_.candidates[c].group == g) {
        FinalEstimate f;
        f.point = point(c, ks.front());
        f.estimate = measure_.estimate(f.point, o_.final_num);
        group.push_back(f);
      }
    std::stable_sort(group.begin(), group.end(),
                     [&](const FinalEstimate& a, const FinalEstimate& b) { return score(a.estimate) < score(b.estimate); });
    for (size_t j = 0; j < group.size(); ++j) {
      group[j].rank = static_cast<int>(j + 1);
      if (j > 0) group[j].vs_winner = measure_.difference(group[j].point, group[0].point, o_.final_num);
    }
    result.winners.push_back(result.finals.size());
    result.finals.insert(result.finals.end(), group.begin(), group.end());
  }
  if (result.winners.size() >= 2)
    result.between_groups = measure_.difference(result.finals[result.winners[0]].point,
                                                result.finals[result.winners[1]].point, o_.final_num);
}

SearchResult Search::run(const std::function<void(const SearchRound&)>& on_round) {
  SearchResult result;
  result.groups = groups_;
  const int64_t budget = o_.budget > 0 ? o_.budget : std::numeric_limits<int64_t>::max();
  // Enough rounds for every shrink of the step and as many moves; beyond that the noise is deciding.
  int max_rounds = 3;
  for (int64_t s = lattice_.first_step(); s > 1; s /= 2) max_rounds += 2;
  int64_t n = std::min(o_.first_num, o_.final_num);
  for (int r = 0;; ++r) {
    if (r > 0 && done()) {
      result.stopped = "converged";
      break;
    }
    if (r == max_rounds) {
      result.stopped = "round limit";
      break;
    }
    Plan p = next_plan(r == 0);
    // The first round fits: check_search saw to it. A later one that does not goes on with fewer candidates.
    while (r > 0 && !p.empty() && !fits(p, n, budget)) set_aside_one(p);
    if (p.empty()) {
      result.stopped = "budget";
      break;
    }
    result.rounds.push_back(round(p, n, r == 0));
    if (on_round) on_round(result.rounds.back());
    n = std::min(2 * n, o_.final_num);
  }
  finish(result);
  result.images = images_;
  return result;
}

}  // namespace

void check_search(const SearchOptions& o) {
  if (o.candidates.empty()) throw FieldError("candidates", "no candidate to search: give a guide or an unconditional net");
  if (!(o.w_step > 0) || !std::isfinite(o.w_step)) throw FieldError("w_step", "the w_step of the guidance range must be > 0");
  if (!(o.w_lo >= 0) || !(o.w_hi >= o.w_lo)) throw FieldError("guidance", "the guidance range must have 0 <= low <= high");
  if (o.candidates.size() == 1 && Lattice(o).last == 0)
    throw FieldError("guidance", "one candidate and a single weight leave nothing to search: give a range of weights "
                                 "(e.g. 1:3:0.05) or more candidates");
  if (o.first_num < 2) throw FieldError("first_num", "first_num: the first round needs at least 2 seeds");
  if (o.final_num < o.first_num)
    throw FieldError("final_num", "final_num: the final estimate needs at least the first round's seeds (" +
                                      std::to_string(o.first_num) + ")");
  if (o.budget < 0) throw FieldError("budget", "the budget must be >= 0 images (0: no limit)");
  const int64_t need = search_cost(o).first_round;
  if (o.budget > 0 && o.budget < need)
    throw FieldError("budget", "a budget of " + std::to_string(o.budget) + " images cannot finish one round: the first "
                     "round and the final estimate need " + std::to_string(need) +
                     "; raise the budget, or start with fewer seeds or fewer candidates");
}

std::vector<double> first_weights(const SearchOptions& o) {
  const Lattice lattice(o);
  std::vector<double> ws;
  for (int64_t k : lattice.first_positions()) ws.push_back(lattice.weight(k));
  return ws;
}

SearchCost search_cost(const SearchOptions& o) {
  const Lattice lattice(o);
  const auto candidates = static_cast<int64_t>(o.candidates.size());
  SearchCost cost;
  const std::vector<double> ws = first_weights(o);
  const auto guided = static_cast<int64_t>(std::count_if(ws.begin(), ws.end(), [](double w) { return w != 1; }));
  std::set<std::string> mains;
  for (const auto& c : o.candidates) mains.insert(c.main);
  const auto unguided_points = static_cast<int64_t>(mains.size());
  const int64_t first_points = candidates * guided + (guided < static_cast<int64_t>(ws.size())) * unguided_points;
  int64_t n = std::min(o.first_num, o.final_num);
  cost.images = first_points * n;
  cost.rounds = 1;
  // No candidate dropped, every centre staying best: two new neighbours at n and the centre's new seeds per round.
  for (int64_t s = lattice.first_step() / 2; s >= 1; s /= 2) {
    const int64_t next = std::min(2 * n, o.final_num);
    cost.images += candidates * (2 * next + (next - n));
    n = next;
    ++cost.rounds;
  }
  std::map<std::string, int64_t> per_group;
  for (const auto& c : o.candidates) ++per_group[c.group];
  int64_t finalists = 0;
  // Each group's points of lowest FD: its candidates' weights, one point for a lone candidate on one weight.
  const auto weights = static_cast<int64_t>(ws.size());
  for (const auto& [g, count] : per_group) finalists += std::min<int64_t>(count * weights, kFinalistsPerGroup);
  cost.first_round = first_points * std::min(o.first_num, o.final_num) +
                     finalists * std::max<int64_t>(0, o.final_num - std::min(o.first_num, o.final_num));
  cost.images += finalists * std::max<int64_t>(0, o.final_num - n);
  int64_t grid_points = 0, unguided = 0;  // a grid samples w = 1 once too
  for (int64_t k = 0; k <= lattice.last; ++k) (lattice.weight(k) == 1 ? unguided : grid_points) += 1;
  cost.grid_images = (candidates * grid_points + std::min<int64_t>(unguided, 1) * unguided_points) * o.final_num;
  return cost;
}

SearchResult search_guidance(const SearchOptions& o, SearchMeasure& measure,
                             const std::function<void(const SearchRound&)>& on_round) {
  check_search(o);
  return Search(o, measure).run(on_round);
}

}  // namespace autoguide
