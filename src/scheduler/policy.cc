#include "scheduler/policy.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <queue>
#include <tuple>

namespace cairn::scheduler {

std::optional<Priority> ParsePriority(const std::string& name) {
  if (name == "low") return Priority::kLow;
  if (name == "medium") return Priority::kMedium;
  if (name == "high") return Priority::kHigh;
  return std::nullopt;
}

std::optional<Tier> ParseTier(const std::string& name) {
  if (name == "spot") return Tier::kSpot;
  if (name == "basic") return Tier::kBasic;
  if (name == "standard") return Tier::kStandard;
  if (name == "premium") return Tier::kPremium;
  return std::nullopt;
}

const char* PriorityName(Priority p) {
  switch (p) {
    case Priority::kLow:
      return "low";
    case Priority::kMedium:
      return "medium";
    case Priority::kHigh:
      return "high";
  }
  return "medium";
}

const char* TierName(Tier t) {
  switch (t) {
    case Tier::kSpot:
      return "spot";
    case Tier::kBasic:
      return "basic";
    case Tier::kStandard:
      return "standard";
    case Tier::kPremium:
      return "premium";
  }
  return "standard";
}

namespace {

constexpr long long kNever = std::numeric_limits<long long>::max();

struct Held {
  int gpus = 0, slots = 0, jobs = 0;
};

std::string Plural(int n, const char* what) {
  return std::to_string(n) + " " + what + (n == 1 ? "" : "s");
}

// One pass over a pool: the state it changes as it decides.
class Pass {
 public:
  explicit Pass(const PoolState& s) : s_(s) {
    free_slots_ = s.slot_capacity;
    free_gpus_ = s.gpu_capacity;
    for (const auto& r : s.running) {
      free_slots_ -= r.slots;
      free_gpus_ -= r.gpus;
      Held& h = held_[r.owner];
      h.gpus += r.gpus;
      h.slots += r.slots;
      ++h.jobs;
      if (r.gpus > 0) ends_.push_back({r.expected_end_ms > 0 ? r.expected_end_ms : kNever, r.gpus});
    }
  }

  // Where a person stands: lower goes first.
  double Standing(const std::string& owner) const {
    auto u = s_.usage.find(owner);
    auto sh = s_.shares.find(owner);
    double share = sh == s_.shares.end() || sh->second <= 0 ? 1.0 : sh->second;
    auto h = held_.find(owner);
    double now = h == held_.end() ? 0 : (h->second.gpus + 0.01 * h->second.slots) * s_.horizon_s;
    return ((u == s_.usage.end() ? 0 : u->second) + now) / share;
  }

  Plan Run() {
    // Buckets: by priority, and within one by person (FIFO: one bucket of everyone, in arrival
    // order). Each bucket keeps its jobs in arrival order; people are numbered for the pass.
    const bool fifo = s_.order == Order::kFifo;
    std::map<std::string, int> index;
    std::vector<const std::string*> names;
    std::map<int, std::vector<std::deque<const WaitingJob*>>, std::greater<>> buckets;
    for (const auto& w : s_.waiting) {
      auto [it, added] =
          index.emplace(fifo ? std::string() : w.owner, static_cast<int>(names.size()));
      if (added) names.push_back(&it->first);
      auto& by_owner = buckets[fifo ? 0 : static_cast<int>(w.priority)];
      if (by_owner.size() < names.size()) by_owner.resize(names.size());
      by_owner[static_cast<size_t>(it->second)].push_back(&w);
    }
    standing_.assign(names.size(), 0.0);
    for (size_t i = 0; i < names.size(); ++i) standing_[i] = fifo ? 0.0 : Standing(*names[i]);
    for (auto& bucket : buckets) {
      auto& by_owner =
          bucket.second;  // (a lambda may not capture a structured binding in clang 14)
      // The person who stands lowest offers their oldest job next; ties go to the older job.
      using Key = std::tuple<double, long long, int>;
      std::priority_queue<Key, std::vector<Key>, std::greater<>> next;
      auto offer = [&](size_t owner) {
        const auto& q = by_owner[owner];
        if (!q.empty())
          next.push({standing_[owner], q.front()->enqueued_ms, static_cast<int>(owner)});
      };
      for (size_t o = 0; o < by_owner.size(); ++o) offer(o);
      while (!next.empty()) {
        size_t owner = static_cast<size_t>(std::get<2>(next.top()));
        next.pop();
        const WaitingJob* w = by_owner[owner].front();
        by_owner[owner].pop_front();
        const size_t starts = plan_.start.size();
        if (!Consider(*w)) return Finish();
        if (!fifo && plan_.start.size() > starts) standing_[owner] = Standing(*names[owner]);
        offer(owner);
      }
    }
    return Finish();
  }

 private:
  // Decides one job: false when the pass must stop here (it waits for slots, and the order is
  // strict for slots).
  bool Consider(const WaitingJob& w) {
    if (std::string why = OverQuota(w); !why.empty()) {
      plan_.reasons[w.job] = why;
      return true;
    }
    const bool slots_ok = free_slots_ >= w.slots;
    bool fits = slots_ok && w.gpus <= free_gpus_;
    bool ends_first = false;
    if (fits && plan_.reservation) {
      const Reservation& r = *plan_.reservation;
      ends_first = w.timeout_ms > 0 && r.shadow_ms > 0 &&
                   s_.now_ms + w.timeout_ms + s_.kill_grace_ms <= r.shadow_ms;
      bool leaves_slots = r.slots == 0 || free_slots_ - w.slots >= r.slots;
      fits = ends_first || (leaves_slots && (w.gpus == 0 || w.gpus <= r.extra));
    }
    if (fits) {
      Start(w, ends_first);
      return true;
    }
    if (!slots_ok) return false;
    // It waits for GPUs: later jobs may pass it, up to max_passed times; short of GPUs, it may
    // take spot jobs'.
    blocked_.push_back({&w, plan_.start.size()});
    if (!plan_.reservation && w.passed >= s_.max_passed) plan_.reservation = ReserveFor(w);
    // A few tries a pass: the queue's head is where it matters, and a pass stays cheap with
    // thousands queued.
    if (s_.preemption && plan_.preempt_for.empty() && w.gpus > free_gpus_ &&
        preemption_tries_++ < kPreemptionTries)
      PlanPreemption(w);
    return true;
  }

  std::string OverQuota(const WaitingJob& w) const {
    auto q = s_.quotas.find(w.owner);
    if (q == s_.quotas.end()) return "";
    auto h = held_.find(w.owner);
    Held held = h == held_.end() ? Held{} : h->second;
    const Quota& quota = q->second;
    auto says = [&](int used, int limit, const char* what) {
      return w.owner + " uses " + std::to_string(used) + " of the " + Plural(limit, what) +
             " their quota allows on " + s_.compute;
    };
    if (quota.gpus >= 0 && w.gpus > 0 && held.gpus + w.gpus > quota.gpus)
      return says(held.gpus, quota.gpus, "GPU");
    if (quota.slots >= 0 && held.slots + w.slots > quota.slots)
      return says(held.slots, quota.slots, "CPU slot");
    if (quota.jobs >= 0 && held.jobs + 1 > quota.jobs)
      return says(held.jobs, quota.jobs, "running job");
    return "";
  }

  void Start(const WaitingJob& w, bool ends_first) {
    plan_.start.push_back(w.job);
    free_slots_ -= w.slots;
    free_gpus_ -= w.gpus;
    Held& h = held_[w.owner];
    h.gpus += w.gpus;
    h.slots += w.slots;
    ++h.jobs;
    if (w.gpus > 0) ends_.push_back({w.timeout_ms > 0 ? s_.now_ms + w.timeout_ms : kNever, w.gpus});
    if (plan_.reservation && !ends_first) plan_.reservation->extra -= w.gpus;
  }

  // When the GPUs `w` needs are expected free, from the running jobs' timeouts (a job with none
  // never counts), and how many more are free then.
  Reservation ReserveFor(const WaitingJob& w) {
    Reservation r;
    r.job = w.job;
    r.gpus = w.gpus;
    r.slots = w.slots;
    std::vector<std::pair<long long, int>> ends = ends_;
    std::sort(ends.begin(), ends.end());
    int free = free_gpus_;
    long long shadow = kNever;
    for (size_t k = 0; k < ends.size() && free < w.gpus && ends[k].first != kNever; ++k) {
      free += ends[k].second;
      if (free >= w.gpus) {
        shadow = ends[k].first;
        for (size_t m = k + 1; m < ends.size() && ends[m].first == shadow; ++m)
          free += ends[m].second;
      }
    }
    r.shadow_ms = shadow == kNever ? 0 : shadow;
    r.extra = shadow == kNever ? 0 : free - w.gpus;
    return r;
  }

  // The cheapest spot jobs whose GPUs, with those free and those of jobs already stopping, let `w`
  // start: of lower priority, or of its priority and held by someone above `w`'s owner's standing.
  void PlanPreemption(const WaitingJob& w) {
    if (w.gpus > s_.gpu_capacity) return;
    int soon = free_gpus_;
    for (const auto& r : s_.running)
      if (stopping(r)) soon += r.gpus;
    if (soon >= w.gpus) {
      // Enough are on their way: they are `w`'s; later jobs in this pass take only the rest.
      plan_.preempt_for = w.job;
      free_gpus_ = std::max(0, free_gpus_ - w.gpus);
      return;
    }
    const double mine = Standing(w.owner);
    std::vector<const RunningJob*> victims;
    for (const auto& r : s_.running) {
      if (r.tier != Tier::kSpot || r.gpus == 0 || stopping(r) || r.owner == w.owner) continue;
      bool lower = static_cast<int>(r.priority) < static_cast<int>(w.priority);
      // For fair share, only where taking it does not merely turn the order round (the victim's
      // owner stands above by more than the job itself weighs), and not before it has run a while.
      bool fairer = r.priority == w.priority && s_.order == Order::kFairShare &&
                    Standing(r.owner) > mine + 2 * s_.horizon_s * r.gpus &&
                    s_.now_ms - r.started_ms >= s_.fair_share_min_run_ms;
      if (lower || fairer) victims.push_back(&r);
    }
    // The least work lost first: GPU-seconds done so far, then the newest.
    std::sort(victims.begin(), victims.end(), [&](const RunningJob* a, const RunningJob* b) {
      double la = static_cast<double>(a->gpus) * static_cast<double>(s_.now_ms - a->started_ms);
      double lb = static_cast<double>(b->gpus) * static_cast<double>(s_.now_ms - b->started_ms);
      if (la != lb) return la < lb;
      return a->started_ms > b->started_ms;
    });
    std::vector<std::string> chosen;
    for (const RunningJob* v : victims) {
      if (soon >= w.gpus) break;
      chosen.push_back(v->job);
      soon += v->gpus;
    }
    if (soon < w.gpus) return;
    plan_.preempt = std::move(chosen);
    plan_.preempt_for = w.job;
    free_gpus_ = std::max(0, free_gpus_ - w.gpus);  // the free ones are `w`'s already
  }

  bool stopping(const RunningJob& r) const {
    return std::find(s_.stopping.begin(), s_.stopping.end(), r.job) != s_.stopping.end();
  }

  Plan Finish() {
    // Every job that started after one was blocked passed it.
    for (const auto& [w, starts] : blocked_)
      if (plan_.start.size() > starts)
        plan_.passed[w->job] = static_cast<int>(plan_.start.size() - starts);
    return std::move(plan_);
  }

  static constexpr int kPreemptionTries = 8;
  const PoolState& s_;
  int free_slots_ = 0, free_gpus_ = 0;
  int preemption_tries_ = 0;
  std::vector<double> standing_;  // by the pass's number of each person
  std::map<std::string, Held> held_;
  std::vector<std::pair<long long, int>> ends_;  // (expected end, GPUs) of what holds GPUs
  // Waiting for GPUs, with how many had started by then: later starts passed it.
  std::vector<std::pair<const WaitingJob*, size_t>> blocked_;
  Plan plan_;
};

}  // namespace

std::vector<const WaitingJob*> Ranked(const PoolState& s) {
  std::vector<const WaitingJob*> out;
  for (const auto& w : s.waiting) out.push_back(&w);
  if (s.order == Order::kFifo) return out;
  Pass pass(s);
  std::stable_sort(out.begin(), out.end(), [&](const WaitingJob* a, const WaitingJob* b) {
    if (a->priority != b->priority)
      return static_cast<int>(a->priority) > static_cast<int>(b->priority);
    double sa = pass.Standing(a->owner), sb = pass.Standing(b->owner);
    if (sa != sb) return sa < sb;
    return a->enqueued_ms < b->enqueued_ms;
  });
  return out;
}

Plan PlanPool(const PoolState& s) { return Pass(s).Run(); }

double UsageLedger::Decayed(double value, long long from_ms, long long to_ms) const {
  if (half_life_s_ <= 0 || to_ms <= from_ms) return value;
  return value * std::exp2(-static_cast<double>(to_ms - from_ms) / 1000.0 / half_life_s_);
}

void UsageLedger::Charge(const std::string& owner, double gpu_seconds, double cpu_seconds,
                         long long at_ms) {
  Entry& e = entries_[owner];
  e.value = Decayed(e.value, e.at_ms, at_ms) + gpu_seconds + cpu_weight_ * cpu_seconds;
  e.at_ms = std::max(e.at_ms, at_ms);
}

double UsageLedger::Usage(const std::string& owner, long long now_ms) const {
  auto it = entries_.find(owner);
  return it == entries_.end() ? 0 : Decayed(it->second.value, it->second.at_ms, now_ms);
}

std::map<std::string, double> UsageLedger::All(long long now_ms) const {
  std::map<std::string, double> out;
  for (const auto& [owner, e] : entries_) out[owner] = Decayed(e.value, e.at_ms, now_ms);
  return out;
}

}  // namespace cairn::scheduler
