// The voucher-agent against the real voucher-scheduler, with the faults an
// operator meets: the agent killed, the scheduler stopped or restarted, and
// allocations ended by the scheduler. In every case each metered interval
// must be charged exactly once.
#include <signal.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <regex>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/time_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/agent_world.h"
#include "tests/scheduler/store/store_backend.h"
#include "tests/testing/status_matchers.h"

namespace computevoucher::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// What the agent logs when a call to the scheduler fails.
constexpr char kFailed[] = "; metering continues, retrying with backoff";

// Occurrences of `needle` in `haystack`.
int Count(const std::string& haystack, const std::string& needle) {
  int n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + needle.size())) {
    ++n;
  }
  return n;
}

// The agent stopped the allocation because the scheduler ended it: learnt
// from a heartbeat's answer or from the acknowledgement of a usage record,
// whichever came first.
::testing::Matcher<std::string> StoppedByTheScheduler(
    const std::string& allocation_id) {
  return ::testing::AnyOf(
      HasSubstr("stopping " + allocation_id +
                ": the scheduler no longer wants it"),
      HasSubstr("stopping " + allocation_id + ": the scheduler ended it"));
}

// The first number that `pattern`'s one group captures in `text`; -1 when
// it does not match.
int64_t Capture(const std::string& text, const std::string& pattern) {
  std::smatch match;
  int64_t n = -1;
  if (!std::regex_search(text, match, std::regex(pattern)) ||
      !absl::SimpleAtoi(match[1].str(), &n)) {
    return -1;
  }
  return n;
}

class AgentFaultTest : public AgentWorld {
 protected:
  // Where the cluster's agent log ends now (it is appended to across
  // restarts), to look only at what is written after.
  size_t LogMark(const std::string& cluster_id) {
    return agent(cluster_id).Log().size();
  }
  std::string LogSince(const std::string& cluster_id, size_t mark) {
    const std::string log = agent(cluster_id).Log();
    return mark < log.size() ? log.substr(mark) : "";
  }
  bool WaitForLogSince(const std::string& cluster_id, size_t mark,
                       const std::string& text,
                       absl::Duration timeout = absl::Seconds(30)) {
    return PollUntil(
        [&] {
          return LogSince(cluster_id, mark).find(text) != std::string::npos;
        },
        timeout);
  }

  bool WaitForStoppedByTheScheduler(const std::string& cluster_id,
                                    const std::string& allocation_id) {
    const ::testing::Matcher<std::string> stopped =
        StoppedByTheScheduler(allocation_id);
    return PollUntil([&] { return stopped.Matches(agent(cluster_id).Log()); });
  }

  // Size of the agent's spool log. While the agent runs, frames are only
  // appended to it (it compacts on open, and otherwise only past 64 KiB,
  // which these tests stay under), so it grows with every record spooled
  // and every acknowledgement.
  int64_t SpoolBytes(const std::string& cluster_id) {
    std::error_code error;
    const uintmax_t bytes =
        std::filesystem::file_size(spool_dir(cluster_id) + "/spool.log", error);
    return error ? 0 : static_cast<int64_t>(bytes);
  }
  // Waits until the spool has grown `times` times, one after another.
  bool WaitForSpoolGrowth(const std::string& cluster_id, int times) {
    for (int i = 0; i < times; ++i) {
      const int64_t before = SpoolBytes(cluster_id);
      if (!PollUntil([&] { return SpoolBytes(cluster_id) > before; })) {
        return false;
      }
    }
    return true;
  }

  // Waits until the scheduler has accepted usage up to `sequence`.
  bool WaitForSequence(const std::string& allocation_id, int64_t sequence) {
    return PollUntil([&] {
      return GetAllocation(allocation_id).last_sequence() >= sequence;
    });
  }

  // Checks that the ended allocation's usage was subsidised from its first
  // record up to its end and not after: what the agent metered until it
  // learnt of the end is recorded as unsubsidised.
  void ExpectSubsidisedUntilEnd(const std::string& allocation_id) {
    const pb::Allocation a = GetAllocation(allocation_id);
    const std::vector<pb::ChargedUsage> usage = Usage(allocation_id);
    ASSERT_FALSE(usage.empty());
    const absl::Time first = *FromProto("start", usage[0].record().start());
    const absl::Time ended = *FromProto("ended_at", a.ended_at());
    EXPECT_EQ(a.used_gpu_ms() - a.unsubsidised_gpu_ms(),
              absl::ToInt64Milliseconds(ended - first) * a.gpu_count())
        << a.ShortDebugString();
  }

  // Waits until `a` runs on `cluster_id` and has usage accepted.
  void ExpectRunningWithUsage(const std::string& cluster_id,
                              const pb::Allocation& a) {
    ASSERT_EQ(a.cluster_id(), cluster_id);
    ASSERT_TRUE(WaitForState(a.allocation_id(), pb::ALLOCATION_STATE_RUNNING))
        << agent(cluster_id).Log();
    ASSERT_TRUE(WaitForSequence(a.allocation_id(), 1))
        << agent(cluster_id).Log();
  }
};

TEST_F(AgentFaultTest, MetersAnAllocationFromAssignmentToRelease) {
  StartAgent("sz-b");
  ApproveCluster("sz-b");
  Issue("E-000001", 10'000'00);
  const pb::Allocation a = Allocate("H100", 2, 3600);
  ASSERT_EQ(a.cluster_id(), "sz-b");
  ASSERT_TRUE(WaitForState(a.allocation_id(), pb::ALLOCATION_STATE_RUNNING))
      << agent("sz-b").Log();
  ASSERT_TRUE(PollUntil(
      [&] { return GetAllocation(a.allocation_id()).used_gpu_ms() > 0; }));
  pb::ReleaseAllocationRequest release;
  release.set_request_id(NextRequestId());
  release.set_allocation_id(a.allocation_id());
  pb::Allocation released;
  ASSERT_TRUE(
      enterprise_->ReleaseAllocation(As(e1_token_).get(), release, &released)
          .ok());
  ExpectMeteredOnce("sz-b", a.allocation_id());
  EXPECT_THAT(agent("sz-b").Log(), StoppedByTheScheduler(a.allocation_id()));
  EXPECT_EQ(agent("sz-b").Stop(SIGTERM), 0);
  ExpectVerifies();
}

// Statements and settlement read the stored usage records, so `verify`
// checks each against what replay accepts: one changed in the store after
// it was written fails it, named.
TEST_F(AgentFaultTest, VerifyFindsAUsageRecordChangedInTheStore) {
  StartAgent("sz-b");
  ApproveCluster("sz-b");
  Issue("E-000001", 10'000'00);
  const pb::Allocation a = Allocate("H100", 2, 3600);
  ASSERT_TRUE(WaitForSequence(a.allocation_id(), 2)) << agent("sz-b").Log();
  EXPECT_EQ(agent("sz-b").Stop(SIGTERM), 0);
  std::string out;
  ASSERT_EQ(Verify(&out), 0) << out;
  EXPECT_THAT(out, ::testing::ContainsRegex("usage records: +[1-9]"));

  ASSERT_OK_AND_ASSIGN(std::unique_ptr<store::StoreBackend> backend,
                       store::MakeStoreBackend("sqlite", dir_));
  ASSERT_THAT(backend->ForgeLog([](std::vector<store::Batch>& batches) {
    for (store::Batch& batch : batches) {
      if (batch.usage.empty()) continue;
      batch.usage[0].set_cost_fen(batch.usage[0].cost_fen() + 1);
      return;
    }
  }),
              IsOk());
  EXPECT_EQ(Verify(&out), 1) << out;
  EXPECT_THAT(out, ::testing::ContainsRegex(
                       "usage record 1 \\(allocation " + a.allocation_id() +
                       ", sequence 1\\) differs from what command [0-9]+ "
                       "accepts on replay"));
}

TEST_F(AgentFaultTest,
       AgentKilledWithUnsentUsageResumesWithoutLossOrDoubleCharge) {
  StartAgent("sz-b");
  ApproveCluster("sz-b");
  Issue("E-000001", 10'000'00);
  const pb::Allocation a = Allocate("H100", 2, 3600);
  const std::string& id = a.allocation_id();
  ASSERT_NO_FATAL_FAILURE(ExpectRunningWithUsage("sz-b", a));

  // Killed while the scheduler answers: what it metered since its last
  // record dies with it and must be metered again from the spool's cursor.
  // Killed right after a restart, it resumes from the same cursor again.
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(absl::StrCat("kill with the scheduler up, round ", round));
    const int64_t accepted = GetAllocation(id).last_sequence();
    const size_t mark = LogMark("sz-b");
    EXPECT_EQ(agent("sz-b").Stop(SIGKILL), 128 + SIGKILL);
    StartAgent("sz-b");
    ASSERT_TRUE(WaitForLogSince("sz-b", mark, "resumed " + id))
        << LogSince("sz-b", mark);
    const int64_t resumed_as = Capture(
        LogSince("sz-b", mark), "resumed " + id + ":.* as record #(\\d+)");
    EXPECT_GT(resumed_as, accepted) << LogSince("sz-b", mark);
    ASSERT_TRUE(WaitForSequence(id, resumed_as)) << LogSince("sz-b", mark);
  }

  // Killed while the scheduler is down, with records spooled that it never
  // sent; restarted while the scheduler is still down, so that the backlog
  // waits in the spool across both.
  {
    SCOPED_TRACE("kill with the scheduler down");
    size_t mark = LogMark("sz-b");
    EXPECT_EQ(StopScheduler(SIGKILL), 128 + SIGKILL);
    ASSERT_TRUE(WaitForLogSince("sz-b", mark, kFailed))
        << LogSince("sz-b", mark);
    // Each growth after the failure is a record nobody can acknowledge.
    ASSERT_TRUE(WaitForSpoolGrowth("sz-b", 3)) << LogSince("sz-b", mark);
    EXPECT_EQ(agent("sz-b").Stop(SIGKILL), 128 + SIGKILL);
    mark = LogMark("sz-b");
    StartAgent("sz-b");
    ASSERT_TRUE(WaitForLogSince("sz-b", mark, "allocations to resume)"))
        << LogSince("sz-b", mark);
    const std::string starting = LogSince("sz-b", mark);
    EXPECT_GE(Capture(starting, "\\((\\d+) records pending"), 3) << starting;
    EXPECT_THAT(starting, HasSubstr("1 allocations to resume"));
    ASSERT_TRUE(WaitForLogSince("sz-b", mark, "Register failed"))
        << LogSince("sz-b", mark);

    StartScheduler();
    ASSERT_TRUE(WaitForLogSince("sz-b", mark, "resumed " + id))
        << LogSince("sz-b", mark);
    const int64_t resumed_as = Capture(
        LogSince("sz-b", mark), "resumed " + id + ":.* as record #(\\d+)");
    ASSERT_GT(resumed_as, 3);
    // The backlog (sequences before resumed_as) is accepted, then the
    // records metered since.
    ASSERT_TRUE(WaitForSequence(id, resumed_as + 1)) << LogSince("sz-b", mark);
  }

  Release(id);
  ExpectMeteredOnce("sz-b", id);
  const std::string log = agent("sz-b").Log();
  EXPECT_EQ(Count(log, "started " + id + ":"), 1) << log;
  EXPECT_EQ(Count(log, "resumed " + id + ":"), 3) << log;
  EXPECT_THAT(log, Not(HasSubstr("refused by the scheduler")));
  EXPECT_EQ(agent("sz-b").Stop(SIGTERM), 0);
  EXPECT_THAT(agent("sz-b").Log(),
              HasSubstr("stopped; 0 records left in the spool"));
  ExpectVerifies();
}

TEST_F(AgentFaultTest, SchedulerStoppedWhileAgentMetersThenBacklogDrains) {
  StartAgent("sz-b");
  ApproveCluster("sz-b");
  Issue("E-000001", 10'000'00);
  const pb::Allocation a = Allocate("H100", 2, 3600);
  const std::string& id = a.allocation_id();
  ASSERT_NO_FATAL_FAILURE(ExpectRunningWithUsage("sz-b", a));

  const size_t mark = LogMark("sz-b");
  EXPECT_EQ(StopScheduler(SIGTERM), 0);
  const absl::Time stopped_at = absl::Now();
  ASSERT_TRUE(WaitForLogSince("sz-b", mark, kFailed)) << LogSince("sz-b", mark);
  // Down for a while, and long enough for the agent to spool records that
  // nobody can acknowledge.
  ASSERT_TRUE(WaitForSpoolGrowth("sz-b", 3)) << LogSince("sz-b", mark);
  ASSERT_TRUE(PollUntil(
      [&] { return absl::Now() >= stopped_at + absl::Milliseconds(2500); }));
  const absl::Time restarted_at = absl::Now();
  StartScheduler();
  ASSERT_TRUE(WaitForLogSince("sz-b", mark, "scheduler answers again after "))
      << LogSince("sz-b", mark);
  EXPECT_GE(Capture(LogSince("sz-b", mark),
                    "scheduler answers again after (\\d+) failed calls"),
            1);
  EXPECT_THAT(LogSince("sz-b", mark), Not(HasSubstr("resumed " + id)));
  // Drained: a record that ends after the restart is accepted, so all
  // before it were.
  ASSERT_TRUE(PollUntil([&] {
    const std::vector<pb::ChargedUsage> usage = Usage(id);
    return !usage.empty() &&
           *FromProto("end", usage.back().record().end()) > restarted_at;
  })) << LogSince("sz-b", mark);

  Release(id);
  ASSERT_NO_FATAL_FAILURE(ExpectMeteredOnce("sz-b", id));
  const pb::Allocation ended = GetAllocation(id);
  // The records cover the downtime without a gap, at the allocation's
  // GPUs; several were metered during it and accepted only after.
  absl::Duration covered;
  int backlog = 0;
  for (const pb::ChargedUsage& u : Usage(id)) {
    const absl::Time start = *FromProto("start", u.record().start());
    const absl::Time end = *FromProto("end", u.record().end());
    const absl::Time accepted = *FromProto("accepted_at", u.accepted_at());
    covered += std::max(absl::ZeroDuration(), std::min(end, restarted_at) -
                                                  std::max(start, stopped_at));
    if (end <= restarted_at && accepted >= restarted_at) ++backlog;
  }
  EXPECT_EQ(covered, restarted_at - stopped_at);
  EXPECT_GE(backlog, 3);
  EXPECT_GE(
      ended.used_gpu_ms(),
      absl::ToInt64Milliseconds(restarted_at - stopped_at) * ended.gpu_count());
  EXPECT_EQ(Count(agent("sz-b").Log(), "started " + id + ":"), 1);
  EXPECT_EQ(agent("sz-b").Stop(SIGTERM), 0);
  ExpectVerifies();
}

TEST_F(AgentFaultTest, SchedulerRestartedWhileAgentsRunKeepsEveryAllocation) {
  StartAgent("hz-a");
  StartAgent("sz-b");
  ApproveCluster("hz-a");
  ApproveCluster("sz-b");
  Issue("E-000001", 10'000'00);
  // sz-b is cheaper, so H100 goes there while it has room, then to hz-a.
  struct Placed {
    pb::Allocation allocation;
    std::string cluster_id;
  };
  std::vector<Placed> placed;
  for (const std::string cluster_id : {"sz-b", "sz-b", "hz-a"}) {
    placed.push_back({Allocate("H100", 4, 3600), cluster_id});
  }
  placed.push_back({Allocate("910B", 4, 3600), "hz-a"});
  for (const Placed& p : placed) {
    ASSERT_NO_FATAL_FAILURE(ExpectRunningWithUsage(p.cluster_id, p.allocation));
  }

  const size_t hz_mark = LogMark("hz-a");
  const size_t sz_mark = LogMark("sz-b");
  EXPECT_EQ(StopScheduler(SIGKILL), 128 + SIGKILL);
  // Restarted as soon as both agents have noticed, so that they must
  // register again.
  ASSERT_TRUE(WaitForLogSince("hz-a", hz_mark, kFailed))
      << LogSince("hz-a", hz_mark);
  ASSERT_TRUE(WaitForLogSince("sz-b", sz_mark, kFailed))
      << LogSince("sz-b", sz_mark);
  StartScheduler();
  for (const auto& [cluster_id, mark] :
       {std::pair<std::string, size_t>{"hz-a", hz_mark}, {"sz-b", sz_mark}}) {
    ASSERT_TRUE(
        WaitForLogSince(cluster_id, mark, "scheduler answers again after"))
        << LogSince(cluster_id, mark);
    ASSERT_TRUE(
        WaitForLogSince(cluster_id, mark, "registered cluster " + cluster_id))
        << LogSince(cluster_id, mark);
    EXPECT_EQ(
        Count(agent(cluster_id).Log(),
              "registered cluster " + cluster_id + " (CLUSTER_STATE_APPROVED)"),
        1)  // pending approval the first time
        << agent(cluster_id).Log();
    EXPECT_EQ(Count(agent(cluster_id).Log(), "registered cluster "), 2);
  }
  for (size_t i = 0; i < placed.size(); ++i) {
    const std::string& id = placed[i].allocation.allocation_id();
    SCOPED_TRACE(id);
    const pb::Allocation now = GetAllocation(id);
    EXPECT_EQ(now.state(), pb::ALLOCATION_STATE_RUNNING);
    EXPECT_EQ(now.cluster_id(), placed[i].cluster_id);
    // Usage flows again after the restart.
    EXPECT_TRUE(WaitForSequence(id, now.last_sequence() + 2));
    const std::string log = agent(placed[i].cluster_id).Log();
    EXPECT_EQ(Count(log, "started " + id + ":"), 1) << log;
    EXPECT_THAT(log, Not(HasSubstr("resumed " + id)));
    EXPECT_THAT(log, Not(HasSubstr("stopping " + id)));
  }

  for (const Placed& p : placed) Release(p.allocation.allocation_id());
  for (const Placed& p : placed) {
    SCOPED_TRACE(p.allocation.allocation_id());
    ExpectMeteredOnce(p.cluster_id, p.allocation.allocation_id());
  }
  EXPECT_EQ(agent("hz-a").Stop(SIGTERM), 0);
  EXPECT_EQ(agent("sz-b").Stop(SIGTERM), 0);
  ExpectVerifies();
}

TEST_F(AgentFaultTest, AllocationsEndedByTheSchedulerStopWithinAHeartbeat) {
  StartAgent("sz-b");
  ApproveCluster("sz-b");
  const pb::Voucher released_voucher = Issue("E-000001", 1'000'00);
  const pb::Voucher revoked_voucher = Issue("E-000001", 1'000'00);
  // Valid for a few seconds only: its allocation ends when it expires. (A
  // voucher too small for its allocation is refused at Allocate, as the
  // hold covers the whole duration, at least 60 s; expiry is how a voucher
  // gives out under a running allocation within seconds.)
  const absl::Time expires_at = absl::Now() + absl::Seconds(5);
  const pb::Voucher expiring_voucher = Issue("E-000001", 1'000'00, expires_at);
  const pb::Allocation released =
      Allocate("H100", 2, 3600, {}, released_voucher.voucher_id());
  const pb::Allocation revoked =
      Allocate("H100", 2, 3600, {}, revoked_voucher.voucher_id());
  const pb::Allocation expired =
      Allocate("H100", 2, 3600, {}, expiring_voucher.voucher_id());
  for (const pb::Allocation* a : {&released, &revoked, &expired}) {
    ASSERT_NO_FATAL_FAILURE(ExpectRunningWithUsage("sz-b", *a));
  }
  // Heartbeats come every 200 ms; a loaded machine gets ten times that.
  constexpr absl::Duration kStopWithin = absl::Seconds(2);

  {
    SCOPED_TRACE("released");
    const std::string& id = released.allocation_id();
    const absl::Time asked = absl::Now();
    EXPECT_EQ(Release(id).end_reason(), pb::END_REASON_RELEASED);
    ASSERT_TRUE(WaitForStoppedByTheScheduler("sz-b", id))
        << agent("sz-b").Log();
    EXPECT_LT(absl::Now() - asked, kStopWithin);
    ExpectMeteredOnce("sz-b", id);
    ExpectSubsidisedUntilEnd(id);
  }
  {
    SCOPED_TRACE("revoked");
    const std::string& id = revoked.allocation_id();
    pb::RevokeVoucherRequest r;
    r.set_request_id(NextRequestId());
    r.set_voucher_id(revoked_voucher.voucher_id());
    r.set_reason("e2e: withdrawn while in use");
    pb::Voucher v;
    const absl::Time asked = absl::Now();
    grpc::Status s = admin_->RevokeVoucher(As(admin_token_).get(), r, &v);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(v.state(), pb::VOUCHER_STATE_REVOKED);
    ASSERT_TRUE(WaitForStoppedByTheScheduler("sz-b", id))
        << agent("sz-b").Log();
    EXPECT_LT(absl::Now() - asked, kStopWithin);
    const pb::Allocation a = GetAllocation(id);
    EXPECT_EQ(a.state(), pb::ALLOCATION_STATE_ENDED);
    EXPECT_EQ(a.end_reason(), pb::END_REASON_VOUCHER_REVOKED);
    ExpectMeteredOnce("sz-b", id);
    ExpectSubsidisedUntilEnd(id);
  }
  {
    SCOPED_TRACE("expired");
    const std::string& id = expired.allocation_id();
    ASSERT_TRUE(WaitForState(id, pb::ALLOCATION_STATE_ENDED));
    const pb::Allocation a = GetAllocation(id);
    EXPECT_EQ(a.end_reason(), pb::END_REASON_VOUCHER_EXPIRED);
    const absl::Time ended_at = *FromProto("ended_at", a.ended_at());
    EXPECT_GE(ended_at, expires_at);
    EXPECT_LT(ended_at, expires_at + absl::Seconds(2));  // ticks: 100 ms
    ASSERT_TRUE(WaitForStoppedByTheScheduler("sz-b", id))
        << agent("sz-b").Log();
    ExpectMeteredOnce("sz-b", id);
    ExpectSubsidisedUntilEnd(id);
  }
  // Nothing was left running on the cluster, and nothing restarted.
  for (const pb::Allocation* a : {&released, &revoked, &expired}) {
    EXPECT_EQ(Count(agent("sz-b").Log(), "started " + a->allocation_id() + ":"),
              1);
  }
  EXPECT_EQ(agent("sz-b").Stop(SIGTERM), 0);
  EXPECT_THAT(agent("sz-b").Log(),
              HasSubstr("stopped; 0 records left in the spool"));
  ExpectVerifies();
}

}  // namespace
}  // namespace computevoucher::testing
