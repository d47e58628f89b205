// The process the crash test kills: it opens a data directory, submits
// commands from several threads as fast as it can, and prints one line per
// acknowledged command to stdout, written only after Writer::Submit
// returned (that is, after the command was durable):
//   ISSUE <request_id> <voucher_id>
//   USAGE <allocation_id> <sequence> <subsidy_fen>
// It runs until it is killed. It stores a snapshot every 20 commands; with
// a third argument `snapshot-first` it says READY only once its first
// snapshot is stored.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/clock.h"
#include "common/time_util.h"
#include "scheduler/engine/writer.h"
#include "scheduler/store/sqlite_store.h"
#include "tests/testing/world.h"

namespace {

namespace pb = ::computevoucher::v1;
using computevoucher::testing::AdminPrincipal;
using computevoucher::testing::AgentPrincipal;
using computevoucher::testing::EnterprisePrincipal;
using computevoucher::testing::NewCommand;

// Time at 1000× real speed from a base, so that usage intervals of a minute
// end in the past after a millisecond.
class FastClock final : public computevoucher::Clock {
 public:
  explicit FastClock(absl::Time base) : base_(base), start_(absl::Now()) {}
  absl::Time Now() override { return base_ + (absl::Now() - start_) * 1000; }

 private:
  const absl::Time base_;
  const absl::Time start_;
};

void Say(const std::string& line) {
  const std::string out = line + "\n";
  // One write per line: lines shorter than PIPE_BUF never interleave.
  if (write(STDOUT_FILENO, out.data(), out.size()) < 0) _exit(3);
}

int Fail(const std::string& what, const absl::Status& s) {
  std::fprintf(stderr, "crash_child: %s: %s\n", what.c_str(),
               s.ToString().c_str());
  return 2;
}

// Sets `base` to now, or to the last stored command's time where that is
// later. Returns main's exit status.
int ClockBase(computevoucher::store::Store& store, absl::Time& base) {
  base = absl::Now();
  auto head = store.ReadHead();
  if (!head.ok()) return Fail("head", head.status());
  auto last = store.ReadCommands(head->command_sequence - 1, 1);
  if (!last.ok()) return Fail("read", last.status());
  for (const pb::Command& c : *last)
    base = std::max(base, *computevoucher::FromProto("time", c.time()));
  return 0;
}

// On a fresh data directory, submits the commands that build the test world.
// Returns main's exit status.
int SeedWorldIfFresh(computevoucher::engine::Writer& w) {
  const bool fresh = w.Read([](const computevoucher::core::StateMachine& s) {
    return s.programs().empty();
  });
  if (!fresh) return 0;
  computevoucher::core::StateMachine scratch;
  computevoucher::testing::Driver driver(scratch);
  if (absl::Status s = driver.BuildWorld(); !s.ok()) return Fail("world", s);
  for (pb::Command c : driver.log()) {
    c.clear_sequence();
    c.clear_time();
    if (auto r = w.Submit(c); !r.ok()) return Fail("world command", r.status());
  }
  return 0;
}

// A voucher and an allocation `a` for this run's usage. Returns main's exit
// status.
int AllocateForRun(computevoucher::engine::Writer& w, const std::string& run,
                   pb::Allocation& a) {
  pb::Command issue =
      NewCommand(AdminPrincipal(), absl::StrCat("run", run, "-voucher"));
  issue.mutable_issue_voucher()->set_program_id("P-000001");
  issue.mutable_issue_voucher()->set_enterprise_id("E-000003");
  issue.mutable_issue_voucher()->set_face_value_fen(5000 * 100);
  auto voucher = w.Submit(issue);
  if (!voucher.ok()) return Fail("voucher", voucher.status());
  pb::Command alloc = NewCommand(EnterprisePrincipal("E-000003"),
                                 absl::StrCat("run", run, "-alloc"));
  pb::ResourceRequest* r = alloc.mutable_allocate()->mutable_resources();
  r->set_gpu_model("910B");
  r->set_gpu_count(1);
  r->set_max_duration_s(30 * 24 * 3600);
  r->set_voucher_id(
      static_cast<const pb::Voucher&>(*voucher->response).voucher_id());
  auto allocation = w.Submit(alloc);
  if (!allocation.ok()) return Fail("allocate", allocation.status());
  a = static_cast<const pb::Allocation&>(*allocation->response);
  return 0;
}

// Issues one-fen vouchers forever, saying each acknowledged one.
void IssueForever(computevoucher::engine::Writer& w, const std::string& run,
                  int t) {
  const char* enterprises[] = {"E-000001", "E-000002", "E-000003"};
  for (int i = 0;; ++i) {
    pb::Command c =
        NewCommand(AdminPrincipal(), absl::StrCat("run", run, "-t", t, "-", i));
    c.mutable_issue_voucher()->set_program_id("P-000001");
    c.mutable_issue_voucher()->set_enterprise_id(enterprises[i % 3]);
    c.mutable_issue_voucher()->set_face_value_fen(1);
    auto outcome = w.Submit(c);
    if (!outcome.ok()) {
      std::fprintf(stderr, "crash_child: issue: %s\n",
                   outcome.status().ToString().c_str());
      _exit(2);
    }
    Say(absl::StrCat(
        "ISSUE ", c.request_id(), " ",
        static_cast<const pb::Voucher&>(*outcome->response).voucher_id()));
  }
}

// Reports a minute of usage on `a` forever, each once the clock has passed
// its end, saying each accepted record.
void ReportUsageForever(computevoucher::engine::Writer& w,
                        const pb::Allocation& a, absl::Time assigned,
                        FastClock& clock) {
  for (int64_t seq = 1;; ++seq) {
    const absl::Time start = assigned + absl::Minutes(seq - 1);
    while (clock.Now() < start + absl::Minutes(1)) std::this_thread::yield();
    pb::Command c =
        NewCommand(AgentPrincipal(a.cluster_id()), absl::StrCat("usage-", seq));
    pb::UsageRecord* u = c.mutable_report_usage()->add_records();
    u->set_allocation_id(a.allocation_id());
    u->set_sequence(seq);
    *u->mutable_start() = computevoucher::ToProto(start);
    *u->mutable_end() = computevoucher::ToProto(start + absl::Minutes(1));
    u->set_gpu_ms(60'000);
    auto outcome = w.Submit(c);
    if (!outcome.ok()) _exit(2);
    const auto& ack =
        static_cast<const pb::ReportUsageResponse&>(*outcome->response).acks(0);
    if (ack.result() != pb::USAGE_RESULT_ACCEPTED) {
      std::fprintf(stderr, "crash_child: usage %lld: %s\n",
                   static_cast<long long>(seq), ack.reason().c_str());
      _exit(2);
    }
    Say(absl::StrCat("USAGE ", a.allocation_id(), " ", seq, " ",
                     ack.subsidy_fen()));
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool snapshot_first =
      argc == 4 && std::string(argv[3]) == "snapshot-first";
  if (argc != 3 && !snapshot_first) {
    std::fprintf(stderr, "usage: crash_child DATA_DIR RUN [snapshot-first]\n");
    return 2;
  }
  const std::string dir = argv[1];
  const std::string run = argv[2];
  auto store = computevoucher::store::OpenSqliteStore(
      dir, computevoucher::store::OpenMode::kReadWrite);
  if (!store.ok()) return Fail("open", store.status());
  // Start the fast clock where the stored state left off.
  absl::Time base;
  if (int rc = ClockBase(**store, base); rc != 0) return rc;
  FastClock clock(base);
  // Snapshots every few commands, so that kills land while one is being
  // saved or stored too.
  computevoucher::engine::WriterOptions options;
  options.snapshots.every = 20;
  options.snapshots.kept = 2;
  options.snapshots.pause = 0;
  auto writer = computevoucher::engine::Writer::Open(**store, clock, options);
  if (!writer.ok()) return Fail("writer", writer.status());
  computevoucher::engine::Writer& w = **writer;
  if (int rc = SeedWorldIfFresh(w); rc != 0) return rc;
  pb::Allocation a;
  if (int rc = AllocateForRun(w, run, a); rc != 0) return rc;
  const absl::Time assigned =
      *computevoucher::FromProto("assigned_at", a.assigned_at());
  // A snapshot is due at once: the commands since the last one (or the
  // first) are more than 20.
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  while (snapshot_first && w.stats().snapshots.snapshots == 0) {
    if (absl::Now() > deadline) {
      return Fail("snapshot-first",
                  absl::DeadlineExceededError("no snapshot in 120 s"));
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  Say("READY");

  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&w, &run, t] { IssueForever(w, run, t); });
  }
  threads.emplace_back([&w, &a, &assigned, &clock] {
    ReportUsageForever(w, a, assigned, clock);
  });
  for (std::thread& t : threads) t.join();
  return 0;
}
