// Hyperparameter search: the search space (Azure ML's ten distributions, nested choices) and the
// samplers (random, Sobol, grid, bayesian by TPE). Pure functions of their inputs: trial n of a
// random, Sobol or grid sweep is a function of (seed, n) alone, so a sweep that restarts draws
// exactly the trials it would have drawn (spec/azureml-cli-v2.md sections 5.2-5.4).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace cairn::sweep {

enum class Kind {
  kChoice,
  kRandint,
  kUniform,
  kLogUniform,
  kQUniform,
  kQLogUniform,
  kNormal,
  kLogNormal,
  kQNormal,
  kQLogNormal
};

struct Param;

struct Distribution {
  Kind kind = Kind::kChoice;
  double a = 0, b = 0;  // min_value/max_value, or mu/sigma
  double q = 0;
  long long upper = 0;  // randint: [0, upper)
  // choice: the values; an object value is a nested sub-space (its entries are distributions or
  // constants).
  std::vector<nlohmann::json> values;
  std::vector<std::vector<Param>> nested;  // per value: its sub-space (empty for a plain value)
};

struct Param {
  std::string name;
  Distribution dist;
};
using Space = std::vector<Param>;

// The distribution's `type` word ("qloguniform") and back.
const char* KindName(Kind k);

// Reads `search_space` (a JSON object of name -> distribution). Errors name the field:
// "search_space.lr.max_value: must be greater than min_value (0.1)".
Result<Space> ParseSpace(const nlohmann::json& j);

// Which distributions an algorithm accepts (grid: choice only; bayesian: choice, uniform,
// quniform).
// "" when fine, else the message, naming the parameter.
std::string CheckAlgorithm(const Space& space, const std::string& algorithm);

// The number of points of a grid (the product of the choices' sizes); -1 when not all are plain
// choices.
long long GridSize(const Space& space);

// Draws one value of `d` from uniforms in [0, 1): `u` for the distribution itself, `u2` for normals
// (Box-Muller). Exposed for tests of the formulas.
nlohmann::json Draw(const Distribution& d, double u, double u2);

// Trial `index` (0-based) of each algorithm: a JSON object name -> value (a nested choice
// contributes its chosen sub-space's values too).
nlohmann::json SampleRandom(const Space& space, uint64_t seed, uint64_t index);
nlohmann::json SampleSobol(const Space& space, uint64_t seed, uint64_t index);
nlohmann::json SampleGrid(const Space& space, uint64_t index);  // index < GridSize

// The i-th point (i >= 0) of a Sobol sequence in `dims` dimensions, each coordinate in [0, 1).
std::vector<double> SobolPoint(size_t dims, uint64_t i);

// Bayesian optimisation by a tree-structured Parzen estimator: from finished trials' parameters and
// objective values (`maximize` says which way is better), the next point to try. Random for the
// first `startup` observations. Deterministic for a given (seed, index, observations).
struct Observation {
  nlohmann::json params;
  double value = 0;
};
nlohmann::json SampleTpe(const Space& space, uint64_t seed, uint64_t index,
                         const std::vector<Observation>& observed, bool maximize,
                         size_t startup = 6);

}  // namespace cairn::sweep
