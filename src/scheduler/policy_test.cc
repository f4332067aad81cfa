#include "scheduler/policy.h"

#include <gtest/gtest.h>

#include <cmath>

namespace cairn::scheduler {
namespace {

using Strings = std::vector<std::string>;

WaitingJob Wait(const std::string& job, const std::string& owner, int gpus, long long at,
                Priority p = Priority::kMedium, Tier t = Tier::kStandard) {
  WaitingJob w;
  w.job = job;
  w.owner = owner;
  w.gpus = gpus;
  w.enqueued_ms = at;
  w.priority = p;
  w.tier = t;
  return w;
}

RunningJob Holding(const std::string& job, const std::string& owner, int gpus, long long started,
                   Tier t = Tier::kStandard, Priority p = Priority::kMedium) {
  RunningJob r;
  r.job = job;
  r.owner = owner;
  r.gpus = gpus;
  r.started_ms = started;
  r.tier = t;
  r.priority = p;
  return r;
}

PoolState Pool(int slots, int gpus) {
  PoolState s;
  s.now_ms = 1000000;
  s.slot_capacity = slots;
  s.gpu_capacity = gpus;
  return s;
}

TEST(SchedPolicy, NamesAreAzureMls) {
  EXPECT_EQ(ParsePriority("high"), Priority::kHigh);
  EXPECT_EQ(ParsePriority("urgent"), std::nullopt);
  EXPECT_EQ(ParseTier("spot"), Tier::kSpot);
  EXPECT_EQ(ParseTier("Spot"), std::nullopt);  // as Azure ML: lower case only
  EXPECT_STREQ(PriorityName(Priority::kLow), "low");
  EXPECT_STREQ(TierName(Tier::kPremium), "premium");
}

TEST(SchedPolicy, HigherPriorityStartsFirstThenArrival) {
  struct Case {
    const char* what;
    std::vector<WaitingJob> waiting;
    int gpus;
    Strings start;
  };
  const Case cases[] = {
      {"one GPU free: the high one takes it",
       {Wait("a", "p", 1, 1), Wait("b", "p", 1, 2, Priority::kHigh)},
       1,
       {"b"}},
      {"same priority: arrival", {Wait("a", "p", 1, 1), Wait("b", "p", 1, 2)}, 1, {"a"}},
      {"low waits for medium",
       {Wait("a", "p", 1, 1, Priority::kLow), Wait("b", "p", 1, 2)},
       1,
       {"b"}},
      {"room for all: all start, high first",
       {Wait("a", "p", 1, 1, Priority::kLow), Wait("b", "p", 1, 2, Priority::kHigh),
        Wait("c", "p", 1, 3)},
       3,
       {"b", "c", "a"}},
  };
  for (const auto& c : cases) {
    PoolState s = Pool(8, c.gpus);
    s.waiting = c.waiting;
    EXPECT_EQ(PlanPool(s).start, c.start) << c.what;
  }
}

TEST(SchedPolicy, FifoIgnoresPriorityAndPeople) {
  PoolState s = Pool(8, 1);
  s.order = Order::kFifo;
  s.waiting = {Wait("a", "p", 1, 1, Priority::kLow), Wait("b", "q", 1, 2, Priority::kHigh)};
  EXPECT_EQ(PlanPool(s).start, Strings{"a"});
}

TEST(SchedPolicy, FairShareGoesToWhoeverUsedLeastAndInterleavesAPass) {
  PoolState s = Pool(16, 4);
  // alice queued first and much; bob later. With 4 GPUs free they alternate, bob first (he has
  // used less), instead of alice taking all four.
  for (int i = 0; i < 4; ++i) s.waiting.push_back(Wait("a" + std::to_string(i), "alice", 1, i));
  for (int i = 0; i < 4; ++i) s.waiting.push_back(Wait("b" + std::to_string(i), "bob", 1, 10 + i));
  s.usage = {{"alice", 1000}, {"bob", 0}};
  EXPECT_EQ(PlanPool(s).start, (Strings{"b0", "a0", "b1", "a1"}));
  // A share of 2 halves what counts against bob's usage and holdings.
  s.usage = {{"alice", 0}, {"bob", 0}};
  s.shares = {{"bob", 2}};
  EXPECT_EQ(PlanPool(s).start, (Strings{"a0", "b0", "b1", "a1"}));
}

TEST(SchedPolicy, AJobOverItsOwnersQuotaWaitsWithTheReasonAndHoldsNobodyUp) {
  PoolState s = Pool(16, 8);
  s.running = {Holding("r1", "alice", 2, 0), Holding("r2", "alice", 2, 0)};
  s.waiting = {Wait("a", "alice", 1, 1), Wait("b", "bob", 2, 2)};
  s.quotas["alice"].gpus = 4;
  Plan p = PlanPool(s);
  EXPECT_EQ(p.start, Strings{"b"});
  EXPECT_EQ(p.reasons["a"], "alice uses 4 of the 4 GPUs their quota allows on local");
  // Running jobs and slots count too.
  s.quotas["alice"] = {-1, -1, 2};
  EXPECT_EQ(PlanPool(s).reasons["a"],
            "alice uses 2 of the 2 running jobs their quota allows on local");
  // Under quota: it starts.
  s.quotas["alice"] = {5, -1, -1};
  EXPECT_EQ(PlanPool(s).start, (Strings{"b", "a"}));
}

TEST(SchedPolicy, ABlockedGpuJobIsPassedThenReservedAndBackfillKeepsItsPlace) {
  PoolState s = Pool(16, 4);
  RunningJob r = Holding("long", "x", 3, 0);
  r.expected_end_ms = s.now_ms + 600000;  // its timeout frees 3 GPUs in 10 minutes
  s.running = {r};
  WaitingJob big = Wait("big", "p", 4, 1);
  WaitingJob small = Wait("small", "p", 1, 2);
  WaitingJob quick = Wait("quick", "p", 1, 3);
  quick.timeout_ms = 60000;
  s.waiting = {big, small, quick};
  // Not yet passed enough: both later jobs pass it, and it is counted.
  Plan p = PlanPool(s);
  EXPECT_EQ(p.start, Strings{"small"});
  EXPECT_EQ(p.passed["big"], 1);
  // Passed max_passed times: it holds a reservation; a job that ends before the GPUs are due
  // still backfills, one that could delay it does not.
  s.waiting[0].passed = s.max_passed;
  p = PlanPool(s);
  ASSERT_TRUE(p.reservation);
  EXPECT_EQ(p.reservation->job, "big");
  EXPECT_EQ(p.reservation->shadow_ms, s.now_ms + 600000);
  EXPECT_EQ(p.start, Strings{"quick"});
}

TEST(SchedPolicy, StarvationIsImpossible) {
  // A stream of 1-GPU jobs keeps arriving; a 2-GPU job waits. However many come, after max_passed
  // of them it is reserved and they stop passing it: when the running jobs end, it starts.
  PoolState s = Pool(64, 2);
  s.running = {Holding("r", "x", 1, 0)};
  s.running[0].expected_end_ms = s.now_ms + 1000;
  s.waiting = {Wait("two", "p", 2, 0)};
  int passes = 0;
  for (int t = 1; t < 100 && passes < 50; ++t) {
    s.waiting.push_back(Wait("one" + std::to_string(t), "q", 1, t));
    Plan p = PlanPool(s);
    s.waiting[0].passed += p.passed["two"];
    for (const auto& j : p.start) {  // each one passes it, runs and ends before the next comes
      ASSERT_NE(j, "two");
      s.waiting.erase(std::find_if(s.waiting.begin(), s.waiting.end(),
                                   [&](const WaitingJob& w) { return w.job == j; }));
    }
    ++passes;
    if (s.waiting[0].passed >= s.max_passed) break;
  }
  EXPECT_EQ(s.waiting[0].passed, s.max_passed);
  // Everything ends: the reserved job starts before any later one.
  s.running.clear();
  s.waiting.push_back(Wait("late", "q", 2, 1000));
  Plan p = PlanPool(s);
  ASSERT_FALSE(p.start.empty());
  EXPECT_EQ(p.start[0], "two");
}

TEST(SchedPolicy, PreemptionTakesTheCheapestSpotJobsAndOnlyThose) {
  struct Case {
    const char* what;
    std::vector<RunningJob> running;
    WaitingJob waiting;
    Strings preempt;
  };
  const long long now = 1000000;
  const Case cases[] = {
      {"high takes the newest spot job (least work lost)",
       {Holding("old", "x", 1, now - 500000, Tier::kSpot),
        Holding("new", "x", 1, now - 1000, Tier::kSpot),
        Holding("std", "x", 2, now - 10, Tier::kStandard)},
       Wait("h", "p", 1, 1, Priority::kHigh),
       {"new"}},
      {"needs two GPUs: two cheap one-GPU spot jobs, not the costly two-GPU one",
       {Holding("a", "x", 1, now - 100, Tier::kSpot), Holding("b", "y", 1, now - 200, Tier::kSpot),
        Holding("c", "z", 2, now - 100000, Tier::kSpot)},
       Wait("h", "p", 2, 1, Priority::kHigh),
       {"a", "b"}},
      {"standard jobs are never preempted",
       {Holding("a", "x", 4, now - 100, Tier::kStandard)},
       Wait("h", "p", 1, 1, Priority::kHigh),
       {}},
      {"spot of the same priority, its owner holding less than the waiting one's: kept",
       {Holding("a", "x", 1, now - 100, Tier::kSpot), Holding("b", "p", 3, now - 100)},
       Wait("m", "p", 1, 1),
       {}},
      {"spot of the same priority, its owner far above in usage, run 20 minutes: taken",
       {Holding("a", "heavy", 4, now - 1200000, Tier::kSpot)},
       Wait("m", "p", 1, 1),
       {"a"}},
      {"the same, but started a minute ago: kept (fair share waits for min run)",
       {Holding("a", "heavy", 4, now - 60000, Tier::kSpot)},
       Wait("m", "p", 1, 1),
       {}},
      {"spot of the same priority, its owner holding all four GPUs and no usage: kept (taking "
       "it would only turn the order round)",
       {Holding("a", "x", 4, now - 1200000, Tier::kSpot)},
       Wait("m", "p", 1, 1),
       {}},
      {"not enough spot GPUs to make room: nobody is stopped for nothing",
       {Holding("a", "x", 1, now - 100, Tier::kSpot),
        Holding("b", "x", 3, now - 100, Tier::kStandard)},
       Wait("h", "p", 2, 1, Priority::kHigh),
       {}},
      {"a spot job of higher priority is not taken by a lower one",
       {Holding("a", "x", 4, now - 100, Tier::kSpot, Priority::kHigh)},
       Wait("m", "p", 1, 1),
       {}},
  };
  for (const auto& c : cases) {
    PoolState s = Pool(16, 4);
    s.running = c.running;
    s.waiting = {c.waiting};
    s.usage = {{"heavy", 1e6}};
    Plan p = PlanPool(s);
    EXPECT_EQ(p.preempt, c.preempt) << c.what;
    EXPECT_EQ(p.preempt_for, c.preempt.empty() ? "" : c.waiting.job) << c.what;
  }
}

TEST(SchedPolicy, APersonBelowTheirFairShareMayTakeAnOverusersSpotGpus) {
  PoolState s = Pool(16, 2);
  s.running = {Holding("hog1", "alice", 1, s.now_ms - 900000, Tier::kSpot),
               Holding("hog2", "alice", 1, s.now_ms - 800000, Tier::kSpot)};
  s.usage = {{"alice", 1e6}};
  s.waiting = {Wait("b", "bob", 1, 1)};
  Plan p = PlanPool(s);
  EXPECT_EQ(p.preempt, Strings{"hog2"});
  EXPECT_EQ(p.preempt_for, "b");
  // While those GPUs are on their way, nothing more is stopped, and no later job takes them.
  s.stopping = {"hog2"};
  s.waiting.push_back(Wait("c", "carol", 1, 2));
  p = PlanPool(s);
  EXPECT_TRUE(p.preempt.empty());
  EXPECT_EQ(p.preempt_for, "b");
  EXPECT_TRUE(p.start.empty());
}

TEST(SchedPolicy, UsageDecaysWithItsHalfLife) {
  UsageLedger ledger(3600, 0.5);
  ledger.Charge("alice", 100, 0, 0);
  EXPECT_DOUBLE_EQ(ledger.Usage("alice", 0), 100);
  EXPECT_NEAR(ledger.Usage("alice", 3600 * 1000), 50, 1e-9);
  EXPECT_NEAR(ledger.Usage("alice", 7200 * 1000), 25, 1e-9);
  // A later charge adds to what is left; CPU-seconds weigh cpu_weight of a GPU-second.
  ledger.Charge("alice", 0, 50, 3600 * 1000);
  EXPECT_NEAR(ledger.Usage("alice", 3600 * 1000), 75, 1e-9);
  EXPECT_EQ(ledger.Usage("nobody", 0), 0);
}

TEST(SchedPolicy, FairShareConvergesBetweenTwoPeople) {
  // Two people with endless one-GPU work of an hour each on 4 GPUs; alice starts with a day of all
  // four GPUs behind her. Bob gets more while that weighs, and then, the debt decayed, they share
  // evenly: in the second week within 2%.
  UsageLedger ledger(24 * 3600.0);
  ledger.Charge("alice", 4 * 24 * 3600.0, 0, 0);
  std::map<std::string, double> first_day, second_week;
  std::vector<RunningJob> running;
  int n = 0;
  for (long long hour = 0; hour < 14 * 24; ++hour) {
    long long now = hour * 3600 * 1000;
    for (const auto& r : running) {
      ledger.Charge(r.owner, 3600.0 * r.gpus, 0, now);
      if (hour <= 24) first_day[r.owner] += r.gpus;
      if (hour > 7 * 24) second_week[r.owner] += r.gpus;
    }
    running.clear();  // every job lasts an hour
    PoolState s = Pool(64, 4);
    s.now_ms = now;
    s.usage = ledger.All(now);
    for (const char* who : {"alice", "bob"})
      for (int i = 0; i < 4; ++i)
        s.waiting.push_back(Wait(std::string(who) + std::to_string(n++), who, 1, now));
    for (const auto& j : PlanPool(s).start)
      running.push_back(Holding(j, j.substr(0, j.find_first_of("0123456789")), 1, now));
  }
  EXPECT_GT(first_day["bob"], first_day["alice"] * 1.5);
  double a = second_week["alice"], b = second_week["bob"];
  EXPECT_NEAR(a / (a + b), 0.5, 0.02) << a << " " << b;
}

}  // namespace
}  // namespace cairn::scheduler
