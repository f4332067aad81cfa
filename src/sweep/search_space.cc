#include "sweep/search_space.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace cairn::sweep {

using nlohmann::json;

namespace {

uint64_t Mix(uint64_t x) {  // SplitMix64's finaliser
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A small deterministic generator: the stream for (seed, index) never depends on other trials.
class Rng {
 public:
  Rng(uint64_t seed, uint64_t index, uint64_t salt = 0)
      : s_(Mix(Mix(seed) ^ Mix(index + 0x51ED27u) ^ salt)) {}
  uint64_t Bits() { return Mix(s_ += 0x9E3779B97F4A7C15ull); }
  double Uniform() { return static_cast<double>(Bits() >> 11) * 0x1.0p-53; }  // [0, 1)
  double Normal() {
    double u = Uniform(), v = Uniform();
    return std::sqrt(-2 * std::log(1 - u)) * std::cos(2 * std::numbers::pi * v);
  }

 private:
  uint64_t s_;
};

bool IsNormal(Kind k) {
  return k == Kind::kNormal || k == Kind::kLogNormal || k == Kind::kQNormal ||
         k == Kind::kQLogNormal;
}

json Number(double v, double q) {
  // A quantised value with an integral step is an integer ("--trees 40", not "40.0").
  if (q > 0 && q == std::floor(q) && std::fabs(v) < 9e15)
    return static_cast<long long>(std::llround(v));
  return v;
}

double Quantize(double v, double q) { return std::round(v / q) * q; }

Result<double> Num(const json& j, const std::string& path, const char* field) {
  if (!j.contains(field)) return InvalidArgument(path + ": missing `" + field + "`");
  const json& v = j[field];
  if (!v.is_number())
    return InvalidArgument(path + "." + field + ": must be a number, not " +
                           v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  return v.get<double>();
}

size_t Dims(const Space& space) {
  size_t n = 0;
  for (const auto& p : space) {
    n += IsNormal(p.dist.kind) ? 2 : 1;
    for (const auto& sub : p.dist.nested) n += Dims(sub);
  }
  return n;
}

// Samples `space` into `out` taking uniforms from `next` (a Sobol point or a generator), in a fixed
// order of dimensions: every parameter of every branch owns its dimensions whether or not its
// branch is chosen.
void SampleWith(const Space& space, const std::function<double()>& next, json& out) {
  for (const auto& p : space) {
    double u = next();
    double u2 = IsNormal(p.dist.kind) ? next() : 0.5;
    if (p.dist.kind == Kind::kChoice) {
      size_t n = p.dist.values.size();
      size_t i = std::min(static_cast<size_t>(u * static_cast<double>(n)), n - 1);
      for (size_t b = 0; b < p.dist.nested.size(); ++b) {
        if (p.dist.nested[b].empty()) continue;
        json sub = json::object();
        SampleWith(p.dist.nested[b], next, sub);  // consumes its dimensions either way
        if (b == i) {
          json chosen = p.dist.values[i];
          for (auto& [k, v] : chosen.items())
            if (!v.is_object()) out[k] = v;
          for (auto& [k, v] : sub.items()) {
            out[k] = v;
            chosen[k] = v;
          }
          out[p.name] = chosen;
        }
      }
      if (p.dist.nested.empty() || p.dist.nested[i].empty()) out[p.name] = p.dist.values[i];
    } else {
      out[p.name] = Draw(p.dist, u, u2);
    }
  }
}

// Primitive polynomials over GF(2), in order of degree: bit s is x^s, bit 0 the constant term.
const std::vector<uint32_t>& PrimitivePolynomials(size_t count) {
  static std::vector<uint32_t> found;
  for (uint32_t degree = 1; found.size() < count && degree < 20; ++degree) {
    for (uint32_t p = (1u << degree) | 1u; p < (2u << degree) && found.size() < count; p += 2) {
      if (std::find(found.begin(), found.end(), p) != found.end()) continue;
      // Primitive iff x has order 2^degree - 1 modulo p.
      uint32_t r = 1, order = 0, period = (1u << degree) - 1;
      do {
        r <<= 1;
        if (r & (1u << degree)) r ^= p;
        ++order;
      } while (r != 1 && order <= period);
      if (order == period) found.push_back(p);
    }
  }
  return found;
}

std::vector<uint32_t> Directions(size_t dim) {
  std::vector<uint32_t> v(32);
  if (dim == 0) {
    for (int k = 0; k < 32; ++k) v[static_cast<size_t>(k)] = 1u << (31 - k);
    return v;
  }
  uint32_t p = PrimitivePolynomials(dim)[dim - 1];
  int s = 31 - __builtin_clz(p);
  std::vector<uint32_t> m(32);
  // Initial direction numbers: any odd m_k < 2^k gives a valid sequence; 1 is the simplest.
  for (int k = 0; k < s && k < 32; ++k) m[static_cast<size_t>(k)] = 1;
  for (int k = s; k < 32; ++k) {
    uint32_t x = m[static_cast<size_t>(k - s)] ^ (m[static_cast<size_t>(k - s)] << s);
    for (int l = 1; l < s; ++l)
      if ((p >> (s - l)) & 1u) x ^= m[static_cast<size_t>(k - l)] << l;
    m[static_cast<size_t>(k)] = x;
  }
  for (int k = 0; k < 32; ++k) v[static_cast<size_t>(k)] = m[static_cast<size_t>(k)] << (31 - k);
  return v;
}

}  // namespace

const char* KindName(Kind k) {
  switch (k) {
    case Kind::kChoice:
      return "choice";
    case Kind::kRandint:
      return "randint";
    case Kind::kUniform:
      return "uniform";
    case Kind::kLogUniform:
      return "loguniform";
    case Kind::kQUniform:
      return "quniform";
    case Kind::kQLogUniform:
      return "qloguniform";
    case Kind::kNormal:
      return "normal";
    case Kind::kLogNormal:
      return "lognormal";
    case Kind::kQNormal:
      return "qnormal";
    case Kind::kQLogNormal:
      return "qlognormal";
  }
  return "?";
}

namespace {
Result<Space> ParseSpaceAt(const json& j, const std::string& prefix);

Result<Distribution> ParseDistribution(const json& j, const std::string& path) {
  if (!j.is_object())
    return InvalidArgument(
        path + ": expected a distribution such as {type: uniform, min_value: 0, max_value: 1}");
  if (!j.contains("type") || !j["type"].is_string())
    return InvalidArgument(path + ": missing `type`");
  std::string type = j["type"];
  Distribution d;
  static const Kind kAll[] = {
      Kind::kChoice,      Kind::kRandint, Kind::kUniform,   Kind::kLogUniform, Kind::kQUniform,
      Kind::kQLogUniform, Kind::kNormal,  Kind::kLogNormal, Kind::kQNormal,    Kind::kQLogNormal};
  bool known = false;
  for (Kind k : kAll)
    if (type == KindName(k)) {
      d.kind = k;
      known = true;
    }
  if (!known)
    return InvalidArgument(path + ".type: unknown distribution '" + type +
                           "' (choice, randint, uniform, loguniform, "
                           "quniform, qloguniform, normal, lognormal, qnormal, qlognormal)");
  switch (d.kind) {
    case Kind::kChoice: {
      if (!j.contains("values") || !j["values"].is_array() || j["values"].empty())
        return InvalidArgument(path + ".values: a choice needs a non-empty list of values");
      bool any_nested = false;
      for (size_t i = 0; i < j["values"].size(); ++i) {
        const json& v = j["values"][i];
        d.values.push_back(v);
        std::vector<Param> sub;
        if (v.is_object()) {
          json dists = json::object();
          for (auto& [k, x] : v.items())
            if (x.is_object()) dists[k] = x;
          auto s = ParseSpaceAt(dists, path + ".values[" + std::to_string(i) + "]");
          if (!s.ok()) return s.status();
          sub = std::move(*s);
          any_nested = true;
        } else if (v.is_array() || v.is_null()) {
          return InvalidArgument(path + ".values[" + std::to_string(i) +
                                 "]: a choice value is a number, a string or "
                                 "a map (a nested search space)");
        }
        d.nested.push_back(std::move(sub));
      }
      if (!any_nested) d.nested.clear();
      break;
    }
    case Kind::kRandint: {
      if (!j.contains("upper") || !j["upper"].is_number_integer())
        return InvalidArgument(
            path + ".upper: randint needs an integer `upper` (values are drawn from [0, upper))");
      d.upper = j["upper"];
      if (d.upper < 1)
        return InvalidArgument(path + ".upper: must be at least 1, not " + std::to_string(d.upper));
      break;
    }
    case Kind::kUniform:
    case Kind::kLogUniform:
    case Kind::kQUniform:
    case Kind::kQLogUniform: {
      auto a = Num(j, path, "min_value");
      if (!a.ok()) return a.status();
      auto b = Num(j, path, "max_value");
      if (!b.ok()) return b.status();
      d.a = *a;
      d.b = *b;
      if (d.b < d.a)
        return InvalidArgument(
            path + ".max_value: must not be less than min_value (" +
            j["min_value"].dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + ")");
      break;
    }
    default: {
      auto mu = Num(j, path, "mu");
      if (!mu.ok()) return mu.status();
      auto sigma = Num(j, path, "sigma");
      if (!sigma.ok()) return sigma.status();
      d.a = *mu;
      d.b = *sigma;
      if (d.b <= 0) return InvalidArgument(path + ".sigma: must be greater than 0");
    }
  }
  if (d.kind == Kind::kQUniform || d.kind == Kind::kQLogUniform || d.kind == Kind::kQNormal ||
      d.kind == Kind::kQLogNormal) {
    auto q = Num(j, path, "q");
    if (!q.ok()) return q.status();
    d.q = *q;
    if (d.q <= 0) return InvalidArgument(path + ".q: must be greater than 0");
  }
  return d;
}

Result<Space> ParseSpaceAt(const json& j, const std::string& prefix) {
  if (!j.is_object())
    return InvalidArgument(prefix + ": expected a map of hyperparameter names to distributions");
  Space out;
  for (auto& [name, v] : j.items()) {
    auto d = ParseDistribution(v, prefix + "." + name);
    if (!d.ok()) return d.status();
    out.push_back({name, std::move(*d)});
  }
  return out;
}
}  // namespace

Result<Space> ParseSpace(const json& j) {
  if (j.is_object() && j.empty())
    return InvalidArgument("search_space: needs at least one hyperparameter");
  return ParseSpaceAt(j, "search_space");
}

std::string CheckAlgorithm(const Space& space, const std::string& algorithm) {
  for (const auto& p : space) {
    Kind k = p.dist.kind;
    if (algorithm == "grid" && (k != Kind::kChoice || !p.dist.nested.empty()))
      return "search_space." + p.name +
             ": grid sampling takes only choice (with plain values), not " + KindName(k);
    if (algorithm == "bayesian" && k != Kind::kChoice && k != Kind::kUniform &&
        k != Kind::kQUniform)
      return "search_space." + p.name +
             ": bayesian sampling takes only choice, uniform and quniform, not " + KindName(k);
    if (algorithm == "bayesian" && !p.dist.nested.empty())
      return "search_space." + p.name + ": bayesian sampling does not take nested choices";
    for (const auto& sub : p.dist.nested)
      if (std::string e = CheckAlgorithm(sub, algorithm); !e.empty()) return e;
  }
  return "";
}

long long GridSize(const Space& space) {
  long long n = 1;
  for (const auto& p : space) {
    if (p.dist.kind != Kind::kChoice || !p.dist.nested.empty()) return -1;
    n *= static_cast<long long>(p.dist.values.size());
    if (n > (1LL << 40)) return 1LL << 40;
  }
  return n;
}

json Draw(const Distribution& d, double u, double u2) {
  auto normal = [&] {
    return d.a + d.b * std::sqrt(-2 * std::log(1 - u)) * std::cos(2 * std::numbers::pi * u2);
  };
  double lin = d.a + u * (d.b - d.a);
  switch (d.kind) {
    case Kind::kChoice: {
      size_t n = d.values.size();
      return d.values[std::min(static_cast<size_t>(u * static_cast<double>(n)), n - 1)];
    }
    case Kind::kRandint:
      return std::min(static_cast<long long>(u * static_cast<double>(d.upper)), d.upper - 1);
    case Kind::kUniform:
      return lin;
    case Kind::kLogUniform:
      return std::exp(lin);
    case Kind::kQUniform:
      return Number(Quantize(lin, d.q), d.q);
    case Kind::kQLogUniform:
      return Number(Quantize(std::exp(lin), d.q), d.q);
    case Kind::kNormal:
      return normal();
    case Kind::kLogNormal:
      return std::exp(normal());
    case Kind::kQNormal:
      return Number(Quantize(normal(), d.q), d.q);
    case Kind::kQLogNormal:
      return Number(Quantize(std::exp(normal()), d.q), d.q);
  }
  return nullptr;
}

json SampleRandom(const Space& space, uint64_t seed, uint64_t index) {
  Rng rng(seed, index);
  json out = json::object();
  SampleWith(
      space, [&] { return rng.Uniform(); }, out);
  return out;
}

std::vector<double> SobolPoint(size_t dims, uint64_t i) {
  std::vector<double> out(dims);
  for (size_t d = 0; d < dims; ++d) {
    std::vector<uint32_t> v = Directions(d);
    uint32_t x = 0;
    for (int k = 0; k < 32 && (i >> k); ++k)
      if ((i >> k) & 1) x ^= v[static_cast<size_t>(k)];
    out[d] = x * 0x1.0p-32;
  }
  return out;
}

json SampleSobol(const Space& space, uint64_t seed, uint64_t index) {
  size_t dims = Dims(space);
  // Point index+1 (point 0 is the corner), digitally shifted by the seed: still a low-discrepancy
  // set, and a different one per seed.
  std::vector<double> point = SobolPoint(dims, index + 1);
  Rng shift(seed, 0, 0x50B01);
  for (double& u : point) {
    uint32_t x =
        static_cast<uint32_t>(u * 0x1.0p32) ^ static_cast<uint32_t>(seed ? shift.Bits() : 0);
    u = x * 0x1.0p-32;
  }
  size_t at = 0;
  json out = json::object();
  SampleWith(
      space, [&] { return at < point.size() ? point[at++] : 0.5; }, out);
  return out;
}

json SampleGrid(const Space& space, uint64_t index) {
  json out = json::object();
  for (size_t p = space.size(); p-- > 0;) {  // the last parameter varies fastest
    uint64_t n = space[p].dist.values.size();
    out[space[p].name] = space[p].dist.values[index % n];
    index /= n;
  }
  return out;
}

json SampleTpe(const Space& space, uint64_t seed, uint64_t index,
               const std::vector<Observation>& observed, bool maximize, size_t startup) {
  if (observed.size() < std::max<size_t>(startup, 2)) return SampleRandom(space, seed, index);
  // Better first; the best quarter (at least one) is "good", the rest "bad".
  std::vector<const Observation*> sorted;
  for (const auto& o : observed)
    if (std::isfinite(o.value)) sorted.push_back(&o);
  if (sorted.size() < 2) return SampleRandom(space, seed, index);
  std::stable_sort(sorted.begin(), sorted.end(), [&](const Observation* a, const Observation* b) {
    return maximize ? a->value > b->value : a->value < b->value;
  });
  size_t n_good = std::max<size_t>(
      1, static_cast<size_t>(std::ceil(0.25 * static_cast<double>(sorted.size()))));
  Rng rng(seed, index, 0x7E5);
  constexpr int kCandidates = 24;
  json out = json::object();
  for (const auto& p : space) {
    const Distribution& d = p.dist;
    std::vector<json> good, bad;
    for (size_t i = 0; i < sorted.size(); ++i)
      if (sorted[i]->params.contains(p.name))
        (i < n_good ? good : bad).push_back(sorted[i]->params[p.name]);
    if (d.kind == Kind::kChoice) {
      // Categorical: counts with a prior of one per value.
      size_t n = d.values.size();
      std::vector<double> l(n, 1), g(n, 1);
      for (size_t k = 0; k < n; ++k) {
        for (const auto& v : good) l[k] += v == d.values[k];
        for (const auto& v : bad) g[k] += v == d.values[k];
      }
      double lt = 0, gt = 0;
      for (size_t k = 0; k < n; ++k) lt += l[k], gt += g[k];
      size_t best = 0;
      double best_score = -1;
      for (int c = 0; c < kCandidates; ++c) {
        double r = rng.Uniform() * lt;
        size_t k = 0;
        while (k + 1 < n && r >= l[k]) r -= l[k++];
        double score = (l[k] / lt) / (g[k] / gt);
        if (score > best_score) best_score = score, best = k;
      }
      out[p.name] = d.values[best];
      continue;
    }
    // uniform / quniform: Parzen windows over [min, max] with a wide prior component.
    double lo = d.a, hi = d.b, width = std::max(hi - lo, 1e-12);
    auto mixture = [&](const std::vector<json>& xs) {
      std::vector<std::pair<double, double>> comps = {{(lo + hi) / 2, width}};
      double bw =
          std::max(width * 0.25 * std::pow(static_cast<double>(xs.size()) + 1, -0.2), width * 0.01);
      for (const auto& x : xs)
        if (x.is_number()) comps.push_back({x.get<double>(), bw});
      return comps;
    };
    auto density = [](const std::vector<std::pair<double, double>>& comps, double x) {
      double s = 0;
      for (const auto& [mu, sigma] : comps)
        s += std::exp(-0.5 * (x - mu) * (x - mu) / (sigma * sigma)) / sigma;
      return s / static_cast<double>(comps.size());
    };
    auto lcomps = mixture(good), gcomps = mixture(bad);
    double best = lo, best_score = -1;
    for (int c = 0; c < kCandidates; ++c) {
      const auto& [mu, sigma] =
          lcomps[static_cast<size_t>(rng.Uniform() * static_cast<double>(lcomps.size())) %
                 lcomps.size()];
      double x = mu + sigma * rng.Normal();
      for (int tries = 0; (x < lo || x > hi) && tries < 8; ++tries) x = mu + sigma * rng.Normal();
      x = std::clamp(x, lo, hi);
      double score = density(lcomps, x) / std::max(density(gcomps, x), 1e-300);
      if (score > best_score) best_score = score, best = x;
    }
    out[p.name] = d.kind == Kind::kQUniform ? Number(Quantize(best, d.q), d.q) : json(best);
  }
  return out;
}

}  // namespace cairn::sweep
