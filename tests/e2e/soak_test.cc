// A longer fault soak, run by hand (scripts/soak.sh), not in CI: the real
// scheduler and two real agents, an enterprise redeeming and releasing
// GPUs without pause, and SIGKILL loops of the scheduler and of each agent
// for CV_SOAK_SECONDS (default 300). Every call is retried with its
// request id until answered, as a client must. Afterwards every allocation
// is released and its usage drained, and the soak checks:
//   - each allocation made once per request id, whatever was killed;
//   - each allocation metered exactly once: sequences 1..n, each record
//     starting where the previous ended (no gap, no overlap, across agent
//     kills), up to its end, GPU-ms = GPUs × duration, used_gpu_ms the sum,
//     and its subsidy that of its whole usage (charged cumulatively);
//   - conservation per voucher: face value = available + held + charged +
//     returned, held 0, and charged = the subsidy of its accepted usage;
//   - `voucher-scheduler verify` (the journal's invariants from the first
//     command).
// It prints the figures (kills, calls, retries, records, GPU-hours).
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/time_util.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "tests/e2e/agent_world.h"

namespace computevoucher::testing {
namespace {

bool Retryable(const grpc::Status& s) {
  switch (s.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::UNKNOWN:
      return true;
    default:
      return false;
  }
}

struct Figures {
  std::atomic<int64_t> allocated{0}, released{0}, refused_busy{0},
      retries{0}, scheduler_kills{0}, agent_kills{0};
  std::string last_refusal;  // written by the enterprise thread only
};

// The allocations the enterprise made, by the request id that made them.
struct Made {
  absl::Mutex mu;
  std::map<std::string, std::string> by_request ABSL_GUARDED_BY(mu);
};

// What the allocations that ran add up to.
struct Totals {
  int64_t records = 0;
  int64_t gpu_ms = 0;
  int64_t subsidy = 0;
  int64_t never_ran = 0;
};

class FaultSoak : public AgentWorld {
 protected:
  // Calls `call(context)` until it is answered with something other than a
  // retryable error, with the same request (and so the same request id).
  template <typename Call>
  grpc::Status UntilAnswered(Call call, Figures& figures) {
    while (true) {
      std::unique_ptr<grpc::ClientContext> context = As(e1_token_);
      context->set_deadline(std::chrono::system_clock::now() +
                            std::chrono::seconds(5));
      const grpc::Status s = call(context.get());
      if (!Retryable(s)) return s;
      ++figures.retries;
      absl::SleepFor(absl::Milliseconds(100));
    }
  }

  // The enterprise, on its own connection (the port stays the same across
  // restarts): allocates two GPUs at a time, keeps up to 14 allocations,
  // releases the oldest when full or refused; once `stop`, releases all.
  void RunEnterprise(const pb::Voucher& voucher, Figures& figures, Made& made,
                     const std::atomic<bool>& stop) {
    auto stub = pb::EnterpriseService::NewStub(grpc::CreateChannel(
        scheduler_address(), grpc::InsecureChannelCredentials()));
    std::vector<std::string> open;
    int n = 0;
    auto release_oldest = [&] {
      pb::ReleaseAllocationRequest r;
      r.set_request_id(absl::StrCat("soak-release-", open.front()));
      r.set_allocation_id(open.front());
      pb::Allocation out;
      const grpc::Status s = UntilAnswered(
          [&](grpc::ClientContext* c) {
            return stub->ReleaseAllocation(c, r, &out);
          },
          figures);
      // Already ended (its deadline, a lost cluster) is as good.
      EXPECT_TRUE(s.ok() ||
                  s.error_code() == grpc::StatusCode::FAILED_PRECONDITION)
          << s.error_message();
      ++figures.released;
      open.erase(open.begin());
    };
    while (!stop) {
      // One redemption every 500 ms: each allocation lives about 7 s,
      // some 20 usage records.
      absl::SleepFor(absl::Milliseconds(500));
      if (open.size() >= 14) release_oldest();
      pb::AllocateRequest r;
      r.set_request_id(absl::StrCat("soak-allocate-", ++n));
      r.mutable_resources()->set_gpu_model(n % 2 == 0 ? "H100" : "910B");
      r.mutable_resources()->set_gpu_count(2);
      r.mutable_resources()->set_max_duration_s(3600);
      r.mutable_resources()->set_voucher_id(voucher.voucher_id());
      pb::Allocation a;
      const grpc::Status s = UntilAnswered(
          [&](grpc::ClientContext* c) { return stub->Allocate(c, r, &a); },
          figures);
      if (!s.ok()) {
        ++figures.refused_busy;
        figures.last_refusal = s.error_message();
        if (!open.empty()) release_oldest();
        continue;
      }
      ++figures.allocated;
      open.push_back(a.allocation_id());
      absl::MutexLock lock(&made.mu);
      made.by_request[r.request_id()] = a.allocation_id();
    }
    while (!open.empty()) release_oldest();
  }

  // The killer: every 1-4 s for `length`, SIGKILL the scheduler or one of
  // the agents and start it again at once.
  void KillLoop(absl::Duration length, Figures& figures) {
    std::mt19937 random(20261205);
    const absl::Time end = absl::Now() + length;
    while (absl::Now() < end) {
      absl::SleepFor(absl::Milliseconds(1000 + random() % 3000));
      switch (random() % 3) {
        case 0:
          StopScheduler(SIGKILL);
          StartScheduler();
          ++figures.scheduler_kills;
          break;
        default: {
          const std::string cluster = random() % 2 == 0 ? "hz-a" : "sz-b";
          agent(cluster).Stop(SIGKILL);
          StartAgent(cluster);
          ++figures.agent_kills;
        }
      }
    }
  }

  // No retried request made a second allocation: each allocation answers
  // one request, and the enterprise has as many as `made` lists.
  void ExpectEachRequestAllocatedOnce(
      const std::map<std::string, std::string>& made) {
    std::map<std::string, std::string> request_of;
    for (const auto& [request, id] : made) {
      EXPECT_TRUE(request_of.emplace(id, request).second)
          << id << " answered two requests";
    }
    int64_t listed = 0;
    pb::ListAllocationsRequest list;
    list.mutable_page()->set_page_size(1000);
    while (true) {
      pb::ListAllocationsResponse page;
      const grpc::Status s =
          enterprise_->ListAllocations(As(e1_token_).get(), list, &page);
      ASSERT_TRUE(s.ok()) << s.error_message();
      listed += page.allocations_size();
      if (page.next_page_token().empty()) break;
      list.mutable_page()->set_page_token(page.next_page_token());
    }
    EXPECT_EQ(listed, static_cast<int64_t>(made.size()));
  }

  // Quiet: every allocation ended, and no usage arrives for 3 s (agents
  // report every 300 ms).
  void WaitUntilQuiet() {
    int64_t total = -1;
    absl::Time changed = absl::Now();
    ASSERT_TRUE(PollUntil(
        [&] {
          pb::AdminListAllocationsRequest r;
          r.mutable_page()->set_page_size(1000);
          int64_t sum = 0;
          bool ended = true;
          while (true) {
            pb::AdminListAllocationsResponse page;
            if (!admin_->ListAllocations(As(admin_token_).get(), r, &page).ok())
              return false;
            for (const pb::Allocation& a : page.allocations()) {
              sum += a.last_sequence();
              ended &= a.state() == pb::ALLOCATION_STATE_ENDED;
            }
            if (page.next_page_token().empty()) break;
            r.mutable_page()->set_page_token(page.next_page_token());
          }
          if (sum != total || !ended) {
            total = sum;
            changed = absl::Now();
            return false;
          }
          return absl::Now() - changed >= absl::Seconds(3);
        },
        absl::Minutes(3)));
  }

  // The allocation ended, was metered exactly once up to its end, and was
  // charged the subsidy of its whole usage; adds it to `totals`.
  void CheckAllocation(const std::string& id, Totals& totals) {
    SCOPED_TRACE(id);
    const pb::Allocation a = GetAllocation(id);
    ASSERT_EQ(a.state(), pb::ALLOCATION_STATE_ENDED);
    const std::vector<pb::ChargedUsage> usage = Usage(id);
    if (usage.empty()) {
      // Released before its agent started it (or while the agent was
      // down): never ran, never charged.
      EXPECT_EQ(a.used_gpu_ms(), 0);
      ++totals.never_ran;
      return;
    }
    ExpectMeteredOnce(a, usage, *FromProto("ended_at", a.ended_at()));
    int64_t allocation_gpu_ms = 0;
    int64_t allocation_subsidy = 0;
    int64_t unsubsidised = 0;
    for (const pb::ChargedUsage& charged : usage) {
      allocation_gpu_ms += charged.record().gpu_ms();
      allocation_subsidy += charged.subsidy_fen();
      // The part past the allocation's end (the agent stops it a moment
      // after the release) is recorded without subsidy.
      unsubsidised += charged.unsubsidised_gpu_ms();
    }
    // Charged cumulatively (DESIGN.md, "Charge"): whatever the kills did to
    // the slicing, the allocation's subsidy is that of its whole usage.
    // (A soak's figures are far from overflowing 64 bits.)
    EXPECT_LE(unsubsidised, 5'000 * a.gpu_count())
        << "more than 5 s past the end";
    const int64_t cost = (allocation_gpu_ms - unsubsidised) *
                         a.price_fen_per_gpu_hour() / 3'600'000;
    EXPECT_EQ(allocation_subsidy, cost * a.ratio_bp() / 10'000);
    totals.subsidy += allocation_subsidy;
    totals.records += static_cast<int64_t>(usage.size());
    totals.gpu_ms += allocation_gpu_ms;
  }

  // Conservation: the voucher's money is all somewhere, and what it was
  // charged is `subsidy`, what its usage cost it. Held money returns after
  // the usage grace (60 s here). `v` is the voucher as last read.
  void ExpectConserved(const pb::Voucher& voucher, int64_t subsidy,
                       pb::Voucher& v) {
    ASSERT_TRUE(PollUntil(
        [&] {
          pb::GetVoucherRequest r;
          r.set_voucher_id(voucher.voucher_id());
          const grpc::Status s =
              enterprise_->GetVoucher(As(e1_token_).get(), r, &v);
          return s.ok() && v.held_fen() == 0;
        },
        absl::Minutes(3)))
        << v.ShortDebugString();
    EXPECT_EQ(v.face_value_fen(), v.available_fen() + v.held_fen() +
                                      v.charged_fen() + v.returned_fen())
        << v.ShortDebugString();
    EXPECT_EQ(v.charged_fen(), subsidy) << v.ShortDebugString();
  }

  void PrintFigures(absl::Duration length, const Figures& figures,
                    const Totals& totals, const pb::Voucher& v) {
    std::printf(
        "soak: %s; scheduler killed %lld times, agents %lld times; "
        "%lld allocations (each once; %lld never ran), %lld released, %lld "
        "refused (last: %s), %lld retried calls; %lld usage records "
        "accepted, each once, "
        "%.2f GPU-hours; voucher charged %lld fen = the subsidy of its "
        "usage; verify passed: %s\n",
        absl::FormatDuration(length).c_str(),
        static_cast<long long>(figures.scheduler_kills.load()),
        static_cast<long long>(figures.agent_kills.load()),
        static_cast<long long>(figures.allocated.load()),
        static_cast<long long>(totals.never_ran),
        static_cast<long long>(figures.released.load()),
        static_cast<long long>(figures.refused_busy.load()),
        figures.last_refusal.c_str(),
        static_cast<long long>(figures.retries.load()),
        static_cast<long long>(totals.records), totals.gpu_ms / 3.6e6,
        static_cast<long long>(v.charged_fen()),
        HasFailure() ? "see above" : "yes");
  }
};

TEST_F(FaultSoak, DISABLED_KillLoopsUnderIngestAndRedemption) {
  const char* env = std::getenv("CV_SOAK_SECONDS");
  const absl::Duration length = absl::Seconds(env ? std::atoi(env) : 300);
  StartAgent("hz-a");
  StartAgent("sz-b");
  ApproveCluster("hz-a");
  ApproveCluster("sz-b");
  const pb::Voucher voucher = Issue("E-000001", 1'000'000'00);
  Figures figures;
  Made made;
  std::atomic<bool> stop{false};
  std::thread enterprise([&] { RunEnterprise(voucher, figures, made, stop); });
  KillLoop(length, figures);
  stop = true;
  enterprise.join();

  // Everything ended; wait until each allocation's usage reaches its end.
  std::map<std::string, std::string> by_request;
  {
    absl::MutexLock lock(&made.mu);
    by_request = made.by_request;
  }
  std::vector<std::string> ids;
  for (const auto& [request, id] : by_request) ids.push_back(id);
  ASSERT_NO_FATAL_FAILURE(ExpectEachRequestAllocatedOnce(by_request));
  ASSERT_NO_FATAL_FAILURE(WaitUntilQuiet());
  Totals totals;
  for (const std::string& id : ids) {
    ASSERT_NO_FATAL_FAILURE(CheckAllocation(id, totals));
  }
  pb::Voucher v;
  ASSERT_NO_FATAL_FAILURE(ExpectConserved(voucher, totals.subsidy, v));

  EXPECT_EQ(agent("hz-a").Stop(SIGTERM), 0);
  EXPECT_EQ(agent("sz-b").Stop(SIGTERM), 0);
  ExpectVerifies();
  PrintFigures(length, figures, totals, v);
}

}  // namespace
}  // namespace computevoucher::testing
