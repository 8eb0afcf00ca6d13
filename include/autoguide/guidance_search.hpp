// An adaptive search for the best guidance setting: which candidate (a guide file, a snapshot set at one EMA
// length, CFG's unconditional net) and which weight w give the lowest FD, with a fraction of a grid's images.
//
// How it spends images (why each choice, docs/tune.md):
//  - Rounds on nested seed sets: round r measures every point on the first n_r = first_num * 2^r seeds of one
//    list, so a point measured before only samples the seeds it lacks, and every point of a round shares its
//    seeds with every other (paired comparisons cancel the seeds' common noise).
//  - w per candidate by a compass search on the lattice w_lo + k * w_step (the grid a sweep over the same
//    range would take): the first round measures about six evenly spaced weights over [w_lo, w_hi]; then each
//    round measures the candidate's centre c and c ± h. When c stays best, h halves (the bracket narrows as n
//    doubles: neighbours' FDs differ less as they come closer, and more seeds resolve them); when a neighbour
//    is better, c moves there with the same h, so a noisy early choice is recovered. The search of a candidate
//    has converged when c is best at h = one lattice step. A best weight on the range's edge is reported.
//  - EMA lengths are candidates of their own rather than a second axis refined jointly: the best w moves
//    with the guide's EMA length (autoguidance paper, Table 1), so each length needs its own w, and a length
//    that is clearly worse is dropped early, which costs less than refining a 2-D bracket for every length.
//  - Elimination (successive halving's idea with a test in place of a fixed fraction): within a group
//    (autoguidance, CFG) a candidate is dropped when the paired interval of FD(its best) - FD(leader's best)
//    lies wholly above 0 on the round's seeds, at the confidence Bonferroni-corrected for the group's rivals.
//  - The budget: when a round of every survivor would leave too little for the final, the rounds go on with
//    fewer candidates (successive halving's fixed budget per round, Li et al. 2018): the worst of the largest
//    group is set aside (not dropped: nothing showed it worse), down to one per group, then the last group's.
//    More seeds on the leaders resolve their w, where a round of everyone would stop the search early.
//  - The final ranking: each group's kFinalistsPerGroup points of lowest FD on its last round's seeds (two
//    candidates' best weights, or one candidate's two best weights: the closest call the rounds left), measured
//    on final_num seeds with their intervals and, from kFdInfinityMinImages on, FD-inf, by which they are ranked
//    (by FD below that). Two per group: the paired difference between them is the one a user needs; more would
//    multiply the final's cost.
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "autoguide/fd_uncertainty.hpp"

namespace autoguide {

// The points of a group that the final estimate measures.
constexpr size_t kFinalistsPerGroup = 2;

// A setting the search measures: a candidate at a weight.
struct SearchPoint {
  size_t candidate = 0;
  double w = 1;
};

// What the search asks of whoever samples and measures (the CLI's sampler and detector; a synthetic objective
// in the tests). Points at w = 1 sample without their guide: one setting for every candidate of one main net.
class SearchMeasure {
 public:
  virtual ~SearchMeasure() = default;
  // Gives every point images of the first n seeds of the common list, sampling only those it lacks.
  virtual void extend(const std::vector<SearchPoint>& points, int64_t n) = 0;
  // A point's FD in the objective's space on its first n seeds, with its interval (FD-inf where n allows).
  virtual FdEstimate estimate(const SearchPoint& p, int64_t n) = 0;
  // FD(a) - FD(b) paired on their first n seeds.
  virtual FdDifference difference(const SearchPoint& a, const SearchPoint& b, int64_t n) = 0;
};

struct SearchCandidate {
  std::string label;
  std::string group;  // "autoguidance", "cfg": a winner is named per group, candidates compete within theirs
  std::string main;   // the main net's identity: candidates of one main net share their w = 1 point
};

struct SearchOptions {
  std::vector<SearchCandidate> candidates;
  double w_lo = 1, w_hi = 3;
  double w_step = 0.05;     // the lattice of weights: the finest spacing searched
  int64_t first_num = 64;   // seeds of the first round
  int64_t final_num = 1000; // seeds of the final estimate; rounds never take more
  int64_t budget = 0;       // images in all (rounds and final); 0: no limit but the rounds' own
};

// Refuses a space the search cannot work on (no candidate, w_lo > w_hi, a single candidate with a range of zero
// width, a lattice step that is not positive, first_num < 2, final_num < first_num, a budget below the first round
// and the final): FieldError naming the field.
void check_search(const SearchOptions& o);

// The weights of the first round, on the lattice, in order.
std::vector<double> first_weights(const SearchOptions& o);

// What a search spends: at most `images` if no candidate were ever dropped (`rounds` rounds and the final), and
// what a grid at the lattice's step with every candidate at final_num seeds would spend.
struct SearchCost {
  int rounds = 0;
  int64_t images = 0;
  int64_t first_round = 0;  // the first round and the final with every candidate surviving
  int64_t grid_images = 0;
};
SearchCost search_cost(const SearchOptions& o);

// One candidate in one round.
struct CandidateRound {
  bool measured = false;
  std::string out;                  // why not measured: "dropped" (earlier), "set aside" (the budget), "w found"
  double centre = 0, step = 0;  // the weights measured: centre and centre ± step (the first round: a grid)
  std::vector<double> weights;
  std::vector<FdEstimate> fds;      // at the round's n, one per weight
  double best_w = 0;
  bool at_edge = false;             // the best weight is w_lo or w_hi
  bool converged = false;           // best at a step of one lattice step: its w is found
  bool leader = false;              // of its group
  std::optional<FdDifference> vs_leader;  // FD(best) - FD(leader's best), paired; none for the leader
  // vs_leader's lower bound at the confidence corrected for the group's comparisons (Bonferroni); NaN for the
  // leader or without an interval.
  double drop_bound = std::nan("");
  bool dropped = false;             // dropped in this round: drop_bound > 0
};

struct SearchRound {
  int64_t n = 0;
  int64_t images = 0;  // sampled in this round
  std::vector<CandidateRound> candidates;
};

// A finalist's best point on final_num seeds.
struct FinalEstimate {
  SearchPoint point;
  FdEstimate estimate;
  int rank = 0;  // in its group, 1 = winner
  std::optional<FdDifference> vs_winner;  // paired, against its group's winner
};

struct SearchResult {
  std::vector<SearchRound> rounds;
  std::vector<FinalEstimate> finals;  // group by group, in rank order
  std::vector<std::string> groups;    // in the candidates' order of first appearance
  std::vector<size_t> winners;        // per group: its entry in finals
  std::optional<FdDifference> between_groups;  // winner of groups[0] - winner of groups[1], paired, at final_num
  int64_t images = 0;                  // sampled in all
  std::string stopped;                 // why the rounds ended
};

// Runs the search. `on_round` (may be null) sees each round as it ends (e.g. to save progress).
SearchResult search_guidance(const SearchOptions& o, SearchMeasure& measure,
                             const std::function<void(const SearchRound&)>& on_round = nullptr);

}  // namespace autoguide
