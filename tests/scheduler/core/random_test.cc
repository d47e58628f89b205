// Randomized simulation of the state machine: thousands of random command
// sequences from fixed seeds, with repeated and reused request ids. After
// every command the invariants of DESIGN.md hold and a rejected command has
// changed nothing; at the end of each sequence, replaying the log into a
// fresh state machine rebuilds the same state and the same final hash.
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/time_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/core/state_machine.h"
#include "scheduler/core/verify.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/world.h"

namespace computevoucher::core {
namespace {

using ::computevoucher::testing::AdminPrincipal;
using ::computevoucher::testing::AgentPrincipal;
using ::computevoucher::testing::Driver;
using ::computevoucher::testing::EnterprisePrincipal;
using ::computevoucher::testing::IsOk;
using ::computevoucher::testing::NewCommand;

constexpr int kSequences = 2000;
constexpr int kCommandsPerSequence = 40;

// Journal entries posted across all sequences, by kind: the simulation must
// reach every movement of the money flow for its checks to mean anything.
absl::flat_hash_map<int, int64_t> g_entries_by_kind;

class Simulation {
 public:
  explicit Simulation(uint64_t seed) : rng_(seed) {}

  void Run() {
    ASSERT_THAT(driver_.BuildWorld(), IsOk());
    // A small second program, so that budgets run out.
    pb::Command small = NewCommand(AdminPrincipal(), "small-program");
    pb::CreateProgramRequest* r = small.mutable_create_program();
    r->set_name("small");
    r->set_issuer("test");
    r->set_budget_fen(50'000);
    *r->mutable_valid_from() = ToProto(driver_.now());
    *r->mutable_valid_until() = ToProto(driver_.now() + absl::Hours(24 * 20));
    r->set_domestic_ratio_bp(Pick(0, 10'000));
    r->set_other_ratio_bp(Pick(0, 10'000));
    r->set_sme_ratio_bp(Pick(0, 10'000));
    r->set_enterprise_cap_fen(Pick(0, 1) ? 0 : 30'000);
    ASSERT_THAT(driver_.Apply(small), IsOk());
    Absorb();

    for (int i = 0; i < kCommandsPerSequence; ++i) {
      Step(i);
      if (::testing::Test::HasFatalFailure()) return;
    }
    // Replaying the log rebuilds the same state and the same hash.
    StateMachine replica;
    for (const pb::Command& c : driver_.log()) {
      absl::StatusOr<Outcome> outcome = replica.Apply(c);
      ASSERT_TRUE(outcome.ok() && outcome->changed) << c.DebugString();
    }
    ASSERT_EQ(replica.Digest(), state_.Digest());
    ASSERT_EQ(replica.ledger().last_hash(), state_.ledger().last_hash());
    ASSERT_EQ(replica.ledger().balances(), state_.ledger().balances());
    // Rejected and retried commands left nothing behind either: the live
    // state saves what the replayed one does, but for the time of the last
    // command applied.
    pb::StateSnapshot live = state_.Save();
    pb::StateSnapshot replayed = replica.Save();
    live.mutable_books()->clear_now();
    replayed.mutable_books()->clear_now();
    ASSERT_EQ(live.DebugString(), replayed.DebugString());
    CheckSnapshot();
  }

  // A snapshot taken after any command of the log and loaded into a fresh
  // state machine goes on exactly as the state it was taken from: the same
  // answers to the rest of the log and to every request retried, the same
  // state at the end.
  void CheckSnapshot() {
    const std::vector<pb::Command>& log = driver_.log();
    const size_t cut = static_cast<size_t>(
        Pick(1, static_cast<int64_t>(log.size())));
    StateMachine original;
    for (size_t i = 0; i < cut; ++i) ASSERT_THAT(original.Apply(log[i]), IsOk());
    pb::StateSnapshot saved;
    ASSERT_TRUE(saved.ParseFromString(original.Save().SerializeAsString()));
    StateMachine loaded;
    ASSERT_THAT(loaded.Load(saved), IsOk());
    ASSERT_EQ(Deterministic(loaded.Save()), Deterministic(original.Save()));
    std::vector<pb::Command> rest(log.begin() + static_cast<int64_t>(cut),
                                  log.end());
    for (pb::Command retry : history_) {
      *retry.mutable_time() = log.back().time();
      retry.mutable_time()->set_seconds(retry.time().seconds() + 1);
      rest.push_back(std::move(retry));
    }
    for (const pb::Command& c : rest) {
      absl::StatusOr<Outcome> a = original.Apply(c);
      absl::StatusOr<Outcome> b = loaded.Apply(c);
      ASSERT_EQ(a.status(), b.status()) << c.DebugString();
      if (!a.ok()) continue;
      ASSERT_EQ(a->changed, b->changed) << c.DebugString();
      ASSERT_EQ(a->response->SerializeAsString(),
                b->response->SerializeAsString())
          << c.DebugString();
    }
    ASSERT_EQ(Deterministic(loaded.Save()), Deterministic(original.Save()));
  }

 private:
  int64_t Pick(int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng_);
  }
  template <typename T>
  const T& PickFrom(const std::vector<T>& v) {
    return v[static_cast<size_t>(Pick(0, static_cast<int64_t>(v.size()) - 1))];
  }
  std::string Enterprise() {
    return PickFrom<std::string>({"E-000001", "E-000002", "E-000003"});
  }
  std::string AnyVoucher() {
    std::vector<std::string> ids = state_.VoucherIds();
    ids.push_back("CV-2025-999999");
    return PickFrom(ids);
  }

  // Feeds newly posted entries to the verifier and checks every invariant.
  void Absorb() {
    for (const pb::JournalEntry& e : state_.TakeJournal()) {
      ++g_entries_by_kind[e.kind()];
      verifier_.Add(e);
    }
    const std::vector<std::string> violations = verifier_.Check(state_);
    ASSERT_TRUE(violations.empty()) << violations.front();
  }

  pb::Command Random(int i) {
    const std::string id = absl::StrCat("r", i);
    switch (Pick(0, 12)) {
      case 0:
      case 1: {
        pb::Command c = NewCommand(AdminPrincipal(), id);
        pb::IssueVoucherRequest* r = c.mutable_issue_voucher();
        r->set_program_id(Pick(0, 2) ? "P-000001" : "P-000002");
        r->set_enterprise_id(Pick(0, 9) ? Enterprise() : "E-404");
        r->set_face_value_fen(Pick(0, 9) ? Pick(1, 40'000)
                                         : Pick(-5, 900'000'000));
        r->set_priority(static_cast<int32_t>(Pick(0, 3)));
        if (Pick(0, 3) == 0) {
          *r->mutable_valid_until() =
              ToProto(driver_.now() + absl::Minutes(Pick(-10, 600)));
        }
        return c;
      }
      case 2:
      case 3:
      case 4: {
        pb::Command c = NewCommand(EnterprisePrincipal(Enterprise()), id);
        pb::AllocateRequest* r = c.mutable_allocate();
        if (Pick(0, 4) == 0) {
          r->mutable_resources()->set_hardware_class(
              pb::HARDWARE_CLASS_DOMESTIC);
        } else {
          r->mutable_resources()->set_gpu_model(
              PickFrom<std::string>({"H100", "910B", "B200"}));
        }
        r->mutable_resources()->set_gpu_count(static_cast<int32_t>(Pick(0, 9)));
        r->mutable_resources()->set_max_duration_s(Pick(30, 7200));
        if (Pick(0, 3) == 0)
          r->mutable_resources()->set_voucher_id(AnyVoucher());
        r->set_queue_if_busy(Pick(0, 1));
        return c;
      }
      case 5:
      case 6:
      case 7:
        return RandomUsage(id);
      case 8: {
        const std::vector<std::string> ids = state_.AllocationIds();
        if (ids.empty()) return RandomUsage(id);
        const pb::Allocation a = *state_.AllocationView(PickFrom(ids));
        const std::string owner = Pick(0, 9) ? a.enterprise_id() : Enterprise();
        pb::Command c = NewCommand(EnterprisePrincipal(owner), id);
        if (Pick(0, 2)) {
          c.mutable_release_allocation()->set_allocation_id(a.allocation_id());
        } else {
          c.mutable_extend_allocation()->set_allocation_id(a.allocation_id());
          c.mutable_extend_allocation()->set_extra_duration_s(Pick(0, 3600));
        }
        return c;
      }
      case 9: {
        pb::Command c = NewCommand(AdminPrincipal(), id);
        switch (Pick(0, 3)) {
          case 0:
            c.mutable_suspend_voucher()->set_voucher_id(AnyVoucher());
            c.mutable_suspend_voucher()->set_reason("check");
            break;
          case 1:
            c.mutable_resume_voucher()->set_voucher_id(AnyVoucher());
            break;
          case 2:
            c.mutable_revoke_voucher()->set_voucher_id(AnyVoucher());
            c.mutable_revoke_voucher()->set_reason("fraud");
            break;
          default:
            c.mutable_adjust_voucher()->set_voucher_id(AnyVoucher());
            c.mutable_adjust_voucher()->set_delta_fen(Pick(-3000, 3000));
            c.mutable_adjust_voucher()->set_reason("correction");
        }
        return c;
      }
      case 10: {
        pb::Command c = NewCommand(AdminPrincipal(), id);
        const std::string provider = Pick(0, 1) ? "PR-000001" : "PR-000002";
        const int64_t payable = state_.ProviderView(provider)->payable_fen();
        c.mutable_settle_provider()->set_provider_id(provider);
        c.mutable_settle_provider()->set_amount_fen(
            Pick(0, 3) ? Pick(1, std::max<int64_t>(1, payable))
                       : Pick(-5, payable + 5));
        c.mutable_settle_provider()->set_reference("bank");
        return c;
      }
      default: {
        driver_.Advance(absl::Seconds(Pick(0, 3 * 3600)));
        pb::Command c;
        c.mutable_tick()->set_usage_grace_s(Pick(0, 600));
        return c;
      }
    }
  }

  pb::Command RandomUsage(const std::string& id) {
    std::vector<std::string> ids = state_.AllocationIds();
    ids.push_back("AL-404");
    const std::string allocation_id = PickFrom(ids);
    auto view = state_.AllocationView(allocation_id);
    const std::string cluster =
        view.ok() && !view->cluster_id().empty() && Pick(0, 9)
            ? view->cluster_id()
            : "hz-a";
    pb::Command c = NewCommand(AgentPrincipal(cluster), id);
    driver_.Advance(absl::Seconds(Pick(0, 900)));
    const int records = static_cast<int>(Pick(1, 3));
    int64_t sequence = view.ok() ? view->last_sequence() + Pick(0, 1) : 1;
    absl::Time start =
        view.ok() && view->has_assigned_at()
            ? std::max(*FromProto("assigned_at", view->assigned_at()),
                       last_end_[allocation_id])
            : driver_.now() - absl::Minutes(5);
    start += absl::Seconds(Pick(-30, 30));
    for (int r = 0; r < records; ++r) {
      pb::UsageRecord* u = c.mutable_report_usage()->add_records();
      u->set_allocation_id(allocation_id);
      u->set_sequence(sequence + Pick(0, 6) / 6);
      const absl::Time end = start + absl::Seconds(Pick(1, 1800));
      *u->mutable_start() = ToProto(start);
      *u->mutable_end() = ToProto(end);
      const int64_t gpus = view.ok() ? view->gpu_count() : 1;
      const int64_t limit = gpus * absl::ToInt64Milliseconds(end - start);
      u->set_gpu_ms(Pick(0, 19) ? Pick(0, limit) : limit + Pick(1, 1000));
      u->set_mean_utilization_bp(static_cast<int32_t>(Pick(0, 10'000)));
      last_end_[allocation_id] = end;
      start = end;
      ++sequence;
    }
    return c;
  }

  void Step(int i) {
    pb::Command command;
    const int64_t dice = Pick(0, 19);
    if (dice == 0 && !history_.empty()) {
      command = PickFrom(history_);  // an exact retry
    } else if (dice == 1 && !history_.empty()) {
      command = Random(i);  // an old request id for a new request
      command.set_request_id(PickFrom(history_).request_id());
      *command.mutable_principal() = PickFrom(history_).principal();
    } else {
      command = Random(i);
    }
    const std::string before = state_.Digest();
    const size_t log_before = driver_.log().size();
    absl::StatusOr<Outcome> outcome = driver_.Apply(command);
    if (!outcome.ok()) {
      ASSERT_EQ(state_.Digest(), before) << outcome.status() << "\n"
                                         << command.DebugString();
      ASSERT_NE(outcome.status().code(), absl::StatusCode::kInternal)
          << outcome.status();
    } else if (!outcome->changed) {
      ASSERT_EQ(state_.Digest(), before) << command.DebugString();
      ASSERT_EQ(driver_.log().size(), log_before);
    }
    if (outcome.ok() && !command.request_id().empty())
      history_.push_back(command);
    Absorb();
  }

  std::mt19937_64 rng_;
  StateMachine state_;
  Driver driver_{state_};
  JournalVerifier verifier_;
  std::vector<pb::Command> history_;
  absl::flat_hash_map<std::string, absl::Time> last_end_;
};

TEST(StateMachineRandom, InvariantsHoldAndReplayIsExact) {
  for (uint64_t seed = 1; seed <= kSequences; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    Simulation simulation(seed);
    simulation.Run();
    if (::testing::Test::HasFatalFailure()) return;
  }
  for (int kind = pb::ENTRY_KIND_FUND; kind <= pb::ENTRY_KIND_SETTLE; ++kind) {
    std::printf("%s: %lld entries\n",
                pb::EntryKind_Name(static_cast<pb::EntryKind>(kind)).c_str(),
                static_cast<long long>(g_entries_by_kind[kind]));
    EXPECT_GE(g_entries_by_kind[kind], 100)
        << pb::EntryKind_Name(static_cast<pb::EntryKind>(kind))
        << " too rare to be tested";
  }
}

}  // namespace
}  // namespace computevoucher::core
