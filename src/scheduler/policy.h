// The scheduling policy of one pool (a compute's slots and GPUs): which waiting jobs start now,
// which spot jobs are preempted for a job that cannot, and why each other job waits.
//
// Pure: the scheduler hands it the queue, what runs, the quotas, each person's decayed usage and
// the time, and it answers with decisions. It owns no state, reads no clock and starts nothing, so
// the policy is tested by tables in microseconds (policy_test.cc) and replayed over 10,000 jobs by
// the simulator (bench/sched_sim.cc). The scheduler calls it on its own thread; so does anyone
// else.
//
// The order (docs/scheduling.md):
//  1. priority (queue_settings.priority: high before medium before low);
//  2. within a priority, fair share: the person whose usage (GPU-seconds and CPU-seconds, decayed
//     with a half-life, plus what they hold now) divided by their share is lowest goes first;
//  3. then arrival.
// A job over its owner's quota waits with that reason and holds nobody up. A job that waits only
// for GPUs may be passed by later jobs that fit, `max_passed` times; then it holds a reservation
// and later jobs start only where they cannot delay it (backfill on the jobs' timeouts). A job that
// cannot start for want of GPUs may take them from running `job_tier: spot` jobs of lower priority,
// or of its own priority whose owners are above their fair share; the cheapest such jobs go (the
// fewest GPU-seconds of work lost).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace cairn::scheduler {

// queue_settings.priority, as Azure ML's REST API numbers them.
enum class Priority { kLow = 1, kMedium = 2, kHigh = 3 };
// queue_settings.job_tier. Only spot jobs may be preempted.
enum class Tier { kSpot, kBasic, kStandard, kPremium };

std::optional<Priority> ParsePriority(const std::string& name);  // "low", "medium", "high"
std::optional<Tier> ParseTier(const std::string& name);  // "spot", "basic", "standard", "premium"
const char* PriorityName(Priority p);
const char* TierName(Tier t);

struct WaitingJob {
  std::string job, owner;
  Priority priority = Priority::kMedium;
  Tier tier = Tier::kStandard;
  int slots = 1;
  int gpus = 0;
  long long enqueued_ms = 0;
  long long timeout_ms = 0;  // its limits.timeout; 0: none
  int passed = 0;            // how many later jobs started before it
};

struct RunningJob {
  std::string job, owner;
  Priority priority = Priority::kMedium;
  Tier tier = Tier::kStandard;
  int slots = 1;
  int gpus = 0;
  long long started_ms = 0;
  long long expected_end_ms = 0;  // from its timeout; 0: none
};

// At most this much of a pool for one person (or a group, summed over its members); -1: no limit.
struct Quota {
  int gpus = -1;
  int slots = -1;
  int jobs = -1;
  bool operator==(const Quota&) const = default;
};

enum class Order {
  kFifo,       // arrival only (with backfill): Cairn's policy before priorities
  kFairShare,  // priority, fair share, arrival
};

struct PoolState {
  std::string compute = "local";
  long long now_ms = 0;
  int slot_capacity = 0;
  int gpu_capacity = 0;
  std::vector<RunningJob> running;
  std::vector<WaitingJob> waiting;      // in arrival order
  std::vector<std::string> stopping;    // running jobs already being preempted (their GPUs are due)
  std::map<std::string, Quota> quotas;  // by person
  // Each person's decayed usage (UsageLedger::Usage) and share (1 when absent).
  std::map<std::string, double> usage;
  std::map<std::string, double> shares;
  // What holding one GPU for the fair-share horizon weighs against usage: a person's standing is
  // (usage + GPUs held now * horizon_s) / share, so what runs now counts before it is charged.
  double horizon_s = 3600;
  long long kill_grace_ms = 30000;
  // A spot job is taken for fair share (not for priority) only after it ran this long.
  long long fair_share_min_run_ms = 600000;
  int max_passed = 8;
  Order order = Order::kFairShare;
  bool preemption = true;
};

struct Reservation {
  std::string job;
  int gpus = 0, slots = 0;
  long long shadow_ms = 0;  // when the GPUs it needs are expected free; 0: not known
  int extra = 0;            // GPUs free then beyond its need
};

struct Plan {
  std::vector<std::string> start;    // in the order they start
  std::vector<std::string> preempt;  // running spot jobs to stop (for `preempt_for`)
  std::string preempt_for;
  std::map<std::string, std::string>
      reasons;                        // a waiting job -> why it waits, where not the pool's
  std::map<std::string, int> passed;  // a job waiting for GPUs -> how many jobs passed it now
  std::optional<Reservation> reservation;
};

// Waiting jobs in the order the policy considers them.
std::vector<const WaitingJob*> Ranked(const PoolState& s);

Plan PlanPool(const PoolState& s);

// Usage with a half-life, as Slurm's fair share decays it: charged in GPU-seconds and CPU-seconds
// (a slot-second weighs `cpu_weight` of a GPU-second), halved every `half_life_s`.
class UsageLedger {
 public:
  explicit UsageLedger(double half_life_s = 7 * 24 * 3600.0, double cpu_weight = 0.01)
      : half_life_s_(half_life_s), cpu_weight_(cpu_weight) {}
  void Charge(const std::string& owner, double gpu_seconds, double cpu_seconds, long long at_ms);
  double Usage(const std::string& owner, long long now_ms) const;
  std::map<std::string, double> All(long long now_ms) const;

 private:
  double Decayed(double value, long long from_ms, long long to_ms) const;
  struct Entry {
    double value = 0;
    long long at_ms = 0;
  };
  double half_life_s_, cpu_weight_;
  std::map<std::string, Entry> entries_;
};

}  // namespace cairn::scheduler
