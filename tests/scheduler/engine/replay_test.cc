#include "scheduler/engine/replay.h"

#include <stdlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/time_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/core/audit.h"
#include "scheduler/core/limits.h"
#include "scheduler/core/state_machine.h"
#include "scheduler/store/sqlite_store.h"
#include "scheduler/store/store.h"
#include "tests/scheduler/engine/forwarding_log.h"
#include "tests/scheduler/store/store_backend.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/world.h"

namespace computevoucher::engine {
namespace {

using store::Batch;
using store::OpenMode;
using store::OpenSqliteStore;
using store::Store;

using ::computevoucher::testing::MakeTempDir;
using ::computevoucher::testing::NewCommand;
using ::computevoucher::testing::TempDir;

using ::computevoucher::testing::AgentPrincipal;
using ::computevoucher::testing::Driver;
using ::computevoucher::testing::IsOk;
using ::testing::Contains;
using ::testing::ContainsRegex;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

// Matches text naming "command <sequence>" (not a longer number).
::testing::Matcher<std::string> NamesCommand(int64_t sequence) {
  return ContainsRegex(absl::StrCat("command ", sequence, "([^0-9]|$)"));
}
::testing::Matcher<std::string> NamesEntry(int64_t sequence) {
  return ContainsRegex(absl::StrCat("entry ", sequence, "([^0-9]|$)"));
}

class ReplayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(MakeTempDir("replay_test", temp_));
    root_ = temp_.path();
    data_dir_ = root_ + "/data";

    // The world, a voucher, an allocation with usage; one batch per
    // command, as the writer would have stored them.
    ASSERT_THAT(driver_.BuildWorld(), IsOk());
    world_commands_ = static_cast<int64_t>(driver_.log().size());
    driver_.Advance(absl::Seconds(2));
    ASSERT_THAT(driver_.Issue("P-000001", "E-000001", 100'000), IsOk());
    driver_.Advance(absl::Seconds(2));
    ASSERT_OK_AND_ASSIGN(const pb::Allocation allocation,
                         driver_.Allocate("E-000001", "H100", 1, 3600));
    ASSERT_OK_AND_ASSIGN(const absl::Time assigned,
                         FromProto("assigned_at", allocation.assigned_at()));
    driver_.Advance(absl::Minutes(2));
    ASSERT_OK_AND_ASSIGN(
        const pb::UsageAck ack,
        driver_.Report(allocation.cluster_id(), allocation.allocation_id(), 1,
                       assigned, assigned + absl::Minutes(1), 60'000));
    ASSERT_EQ(ack.result(), pb::USAGE_RESULT_ACCEPTED);

    std::map<int64_t, Batch> batches;
    for (const pb::Command& c : driver_.log()) {
      batches[c.sequence()].commands.push_back(c);
    }
    for (const pb::JournalEntry& e : state_.TakeJournal()) {
      batches[e.command_sequence()].entries.push_back(e);
      ++entries_;
    }
    // The one record accepted, by the last command.
    ASSERT_TRUE(driver_.log().back().has_report_usage());
    batches[driver_.log().back().sequence()].usage = state_.TakeUsage();
    ASSERT_EQ(batches[driver_.log().back().sequence()].usage.size(), 1u);
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store,
                         OpenSqliteStore(data_dir_, OpenMode::kReadWrite));
    for (const auto& [sequence, batch] : batches) {
      ASSERT_THAT(store->Append(batch), IsOk()) << "command " << sequence;
    }
  }

  // Rewrites the closed store's log through `edit`, as a forger would
  // (StoreBackend::ForgeLog).
  void Forge(const std::function<void(std::vector<Batch>&)>& edit) {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<store::StoreBackend> backend,
                         store::MakeStoreBackend("sqlite", root_));
    ASSERT_THAT(backend->ForgeLog(edit), IsOk());
  }
  void ForgeWithout(int64_t command) {
    ASSERT_NO_FATAL_FAILURE(Forge([&](std::vector<Batch>& batches) {
      ASSERT_TRUE(store::EraseCommand(batches, command));
    }));
  }

  void ReplayStore(ReplayReport* report, core::StateMachine& fresh) {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store,
                         OpenSqliteStore(data_dir_, OpenMode::kReadOnly));
    ASSERT_OK_AND_ASSIGN(*report, Replay(*store, *store, *store, fresh));
  }

  // ReplayStore, expecting the store sound.
  void ReplaySound(ReplayReport* report, core::StateMachine& fresh) {
    ASSERT_NO_FATAL_FAILURE(ReplayStore(report, fresh));
    EXPECT_THAT(report->violations, IsEmpty())
        << absl::StrJoin(report->violations, "\n");
  }

  // Replays the store after `edit` changed the usage records stored with
  // the usage report (one record).
  void ReplayWithStoredUsage(
      const std::function<void(std::vector<pb::ChargedUsage>&)>& edit,
      ReplayReport* report) {
    ASSERT_NO_FATAL_FAILURE(Forge([&](std::vector<Batch>& batches) {
      ASSERT_EQ(batches.back().usage.size(), 1u);
      edit(batches.back().usage);
    }));
    core::StateMachine fresh;
    ASSERT_NO_FATAL_FAILURE(ReplayStore(report, fresh));
  }

  // Releases the allocation, lets its hold go back after the grace period
  // and retires it a retention later, appending each command's batch as the
  // writer would (the retiring tick's with the final view); sets
  // `*retiring_tick` to that tick's sequence.
  // Then, with `voucher_tick` set, its voucher (expiring at the program's
  // end) is retired by the tick whose sequence goes there.
  void AppendRetirement(int64_t* retiring_tick,
                        int64_t* voucher_tick = nullptr) {
    constexpr int64_t kRetainS = 30 * 24 * 3600;
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store,
                         OpenSqliteStore(data_dir_, OpenMode::kReadWrite));
    auto append_last = [&] {
      Batch batch;
      batch.commands = {driver_.log().back()};
      batch.entries = state_.TakeJournal();
      batch.retired = state_.TakeRetired();
      batch.retired_vouchers = state_.TakeRetiredVouchers();
      return store->Append(batch);
    };
    ASSERT_THAT(driver_.Release("E-000001", "AL-00000001"), IsOk());
    ASSERT_THAT(append_last(), IsOk());
    driver_.Advance(absl::Seconds(301));
    ASSERT_THAT(driver_.Tick(300, kRetainS), IsOk());
    ASSERT_THAT(append_last(), IsOk());
    driver_.Advance(absl::Seconds(kRetainS));
    ASSERT_THAT(driver_.Tick(300, kRetainS), IsOk());
    ASSERT_FALSE(state_.allocations().contains("AL-00000001"));
    *retiring_tick = driver_.log().back().sequence();
    ASSERT_THAT(append_last(), IsOk());
    if (voucher_tick == nullptr) return;
    ASSERT_EQ(state_.vouchers().size(), 1u);
    const absl::Time until = *FromProto(
        "valid_until", state_.vouchers().begin()->second.voucher.valid_until());
    driver_.Advance(until - driver_.now());
    ASSERT_THAT(driver_.Tick(300, kRetainS), IsOk());  // expires it
    ASSERT_THAT(append_last(), IsOk());
    driver_.Advance(absl::Seconds(kRetainS));
    ASSERT_THAT(driver_.Tick(300, kRetainS), IsOk());
    ASSERT_THAT(state_.vouchers(), IsEmpty());
    *voucher_tick = driver_.log().back().sequence();
    ASSERT_THAT(append_last(), IsOk());
  }

  // Runs `sql` on the closed store, as a forger with access to it would.
  void Execute(const std::string& sql) {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<store::StoreBackend> backend,
                         store::MakeStoreBackend("sqlite", root_));
    ASSERT_THAT(backend->Execute(sql), IsOk());
  }

  // The sequence of the first command that posted at least one entry after
  // the world was built (the voucher issue).
  int64_t IssueSequence() const { return world_commands_ + 1; }

  TempDir temp_;  // destroyed after the members declared below
  std::string root_;
  std::string data_dir_;
  core::StateMachine state_;
  Driver driver_{state_};
  int64_t world_commands_ = 0;
  int64_t entries_ = 0;
};

TEST_F(ReplayTest, ConsistentStoreHasNoViolations) {
  core::StateMachine fresh;
  ReplayReport report;
  ASSERT_NO_FATAL_FAILURE(ReplaySound(&report, fresh));
  EXPECT_EQ(report.commands, static_cast<int64_t>(driver_.log().size()));
  EXPECT_EQ(report.entries, entries_);
  EXPECT_EQ(report.last_hash, state_.ledger().last_hash());
  EXPECT_EQ(fresh.Digest(), state_.Digest());
  EXPECT_EQ(fresh.last_command_sequence(), driver_.log().back().sequence());
}

TEST_F(ReplayTest, EmptyStoreHasNoViolations) {
  const std::string empty_dir = root_ + "/empty";
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store,
                       OpenSqliteStore(empty_dir, OpenMode::kReadWrite));
  core::StateMachine fresh;
  ASSERT_OK_AND_ASSIGN(const ReplayReport report,
                       Replay(*store, *store, *store, fresh));
  EXPECT_THAT(report.violations, IsEmpty())
      << absl::StrJoin(report.violations, "\n");
  EXPECT_EQ(report.commands, 0);
  EXPECT_EQ(report.entries, 0);
}

TEST_F(ReplayTest, ExtraJournalRowIsReported) {
  // A copy of the last entry under the next sequence, with a fresh key: an
  // entry no command posted.
  ASSERT_NO_FATAL_FAILURE(Forge([](std::vector<Batch>& batches) {
    std::vector<pb::JournalEntry>& entries = batches.back().entries;
    ASSERT_FALSE(entries.empty());
    pb::JournalEntry forged = entries.back();
    forged.set_idempotency_key(forged.idempotency_key() + "/forged");
    entries.push_back(forged);
  }));
  core::StateMachine fresh;
  ReplayReport report;
  ASSERT_NO_FATAL_FAILURE(ReplayStore(&report, fresh));
  EXPECT_THAT(report.violations,
              Contains(::testing::AllOf(NamesEntry(entries_ + 1),
                                        HasSubstr("no stored command"))))
      << absl::StrJoin(report.violations, "\n");
  EXPECT_EQ(report.commands, static_cast<int64_t>(driver_.log().size()));
}

// Statements and settlement read the stored usage records: replay checks
// each against the record the commands accept, charges included.
TEST_F(ReplayTest, ChangedUsageRecordIsReported) {
  ReplayReport report;
  ASSERT_NO_FATAL_FAILURE(ReplayWithStoredUsage(
      [](std::vector<pb::ChargedUsage>& usage) {
        usage[0].set_subsidy_fen(usage[0].subsidy_fen() + 100);
      },
      &report));
  EXPECT_EQ(report.usage_records, 1);
  EXPECT_THAT(report.violations,
              Contains(::testing::AllOf(
                  HasSubstr("usage record 1 (allocation AL-"),
                  HasSubstr("sequence 1)"),
                  HasSubstr("differs from what command"),
                  NamesCommand(driver_.log().back().sequence()))))
      << absl::StrJoin(report.violations, "\n");
}

// A record that differs from every record of the commands is stored itself
// rather than as one of its report's (batch_rows.h); replay reads it so and
// checks it all the same.
TEST_F(ReplayTest, UsageRecordStoredApartFromItsReportIsChecked) {
  ReplayReport report;
  ASSERT_NO_FATAL_FAILURE(ReplayWithStoredUsage(
      [](std::vector<pb::ChargedUsage>& usage) {
        pb::UsageRecord& r = *usage[0].mutable_record();
        r.set_energy_mj(r.energy_mj() + 1);
      },
      &report));
  EXPECT_EQ(report.usage_records, 1);
  EXPECT_THAT(
      report.violations,
      ElementsAre(::testing::AllOf(
          HasSubstr("usage record 1 (allocation AL-"), HasSubstr("sequence 1)"),
          HasSubstr("differs from what command"),
          NamesCommand(driver_.log().back().sequence()))))
      << absl::StrJoin(report.violations, "\n");
}

// An agent resends a record it was told to retry (its end was ahead of the
// scheduler's clock). When the resend is accepted in the same batch as the
// report that first carried it, the row keeps the record as that report's
// (batch_rows.h). Replay finds it there, and, when that report was replayed
// in the chunk of commands before, reads it again from the store: either
// way the store is sound.
TEST_F(ReplayTest, ARetriedRecordAcceptedInTheSameBatchReplaysSound) {
  const pb::Allocation& a = state_.allocations().at("AL-00000001").allocation;
  ASSERT_OK_AND_ASSIGN(absl::Time end,
                       FromProto("assigned_at", a.assigned_at()));
  end += absl::Minutes(1);  // of the record accepted in SetUp
  auto record = [&](int64_t sequence, absl::Time until) {
    pb::UsageRecord r;
    r.set_allocation_id(a.allocation_id());
    r.set_sequence(sequence);
    *r.mutable_start() = ToProto(end);
    *r.mutable_end() = ToProto(until);
    r.set_gpu_ms(30'000);
    end = until;
    return r;
  };
  auto send = [&](std::vector<pb::UsageRecord> records,
                  std::vector<pb::UsageResult> results) {
    pb::Command c =
        NewCommand(AgentPrincipal(a.cluster_id()),
                   absl::StrCat("resend-", records.front().sequence()));
    for (pb::UsageRecord& r : records) {
      *c.mutable_report_usage()->add_records() = std::move(r);
    }
    ASSERT_OK_AND_ASSIGN(const pb::ReportUsageResponse response,
                         driver_.Call<pb::ReportUsageResponse>(std::move(c)));
    ASSERT_EQ(response.acks_size(), static_cast<int>(results.size()));
    for (int i = 0; i < response.acks_size(); ++i) {
      EXPECT_EQ(response.acks(i).result(), results[static_cast<size_t>(i)]);
    }
  };
  // The commands applied since the last one stored, as one batch.
  int64_t stored = driver_.log().back().sequence();
  auto append = [&] {
    Batch batch;
    for (const pb::Command& c : driver_.log()) {
      if (c.sequence() > stored) batch.commands.push_back(c);
    }
    stored = driver_.log().back().sequence();
    batch.entries = state_.TakeJournal();
    batch.usage = state_.TakeUsage();
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store,
                         OpenSqliteStore(data_dir_, OpenMode::kReadWrite));
    ASSERT_THAT(store->Append(batch), IsOk());
  };
  // Records `sequence`, accepted, and the next, ahead of the clock, then
  // the second again once the clock caught up, in one batch.
  auto resend = [&](int64_t sequence) {
    driver_.Advance(absl::Minutes(10));  // past the records before
    const pb::UsageRecord first = record(sequence, driver_.now());
    const pb::UsageRecord ahead = record(
        sequence + 1, driver_.now() + core::kUsageClockSkew + absl::Minutes(1));
    ASSERT_NO_FATAL_FAILURE(send(
        {first, ahead}, {pb::USAGE_RESULT_ACCEPTED, pb::USAGE_RESULT_RETRY}));
    driver_.Advance(absl::Minutes(2));
    ASSERT_NO_FATAL_FAILURE(send({ahead}, {pb::USAGE_RESULT_ACCEPTED}));
    ASSERT_NO_FATAL_FAILURE(append());
  };
  ASSERT_NO_FATAL_FAILURE(resend(2));
  // Again, the first report the last of a chunk of commands replay reads
  // (256), the resend the first of the next.
  while (driver_.log().back().sequence() < 255) {
    ASSERT_THAT(driver_.Issue("P-000001", "E-000001", 100), IsOk());
  }
  ASSERT_NO_FATAL_FAILURE(append());
  ASSERT_NO_FATAL_FAILURE(resend(4));
  ASSERT_EQ(driver_.log().back().sequence(), 257);

  core::StateMachine fresh;
  ReplayReport report;
  ASSERT_NO_FATAL_FAILURE(ReplaySound(&report, fresh));
  EXPECT_EQ(report.usage_records, 5);
}

TEST_F(ReplayTest, ExtraUsageRecordIsReported) {
  // A second record after the accepted one, which no command accepted.
  ReplayReport report;
  ASSERT_NO_FATAL_FAILURE(ReplayWithStoredUsage(
      [](std::vector<pb::ChargedUsage>& usage) {
        pb::ChargedUsage extra = usage[0];
        extra.mutable_record()->set_sequence(2);
        usage.push_back(extra);
      },
      &report));
  EXPECT_THAT(report.violations,
              ElementsAre(::testing::AllOf(
                  HasSubstr("usage record 2 (allocation AL-"),
                  HasSubstr("sequence 2)"),
                  HasSubstr("was accepted by no stored command"))))
      << absl::StrJoin(report.violations, "\n");
}

TEST_F(ReplayTest, DeletedUsageRecordIsReported) {
  ReplayReport report;
  ASSERT_NO_FATAL_FAILURE(ReplayWithStoredUsage(
      [](std::vector<pb::ChargedUsage>& usage) { usage.clear(); }, &report));
  EXPECT_THAT(report.violations,
              Contains(::testing::AllOf(
                  HasSubstr("usage record 1 (allocation AL-"),
                  HasSubstr("is missing from the store"),
                  NamesCommand(driver_.log().back().sequence()))))
      << absl::StrJoin(report.violations, "\n");
}

// Reports read a retired allocation's stored final view: replay checks it
// against the one the commands retire, and counts them.
TEST_F(ReplayTest, RetiredAllocationsAreCheckedAndCounted) {
  int64_t tick = 0;
  ASSERT_NO_FATAL_FAILURE(AppendRetirement(&tick));
  core::StateMachine fresh;
  ReplayReport report;
  ASSERT_NO_FATAL_FAILURE(ReplaySound(&report, fresh));
  EXPECT_EQ(report.retired_allocations, 1);
  EXPECT_EQ(fresh.Digest(), state_.Digest());
}

TEST_F(ReplayTest, ChangedRetiredAllocationIsReported) {
  int64_t tick = 0;
  ASSERT_NO_FATAL_FAILURE(AppendRetirement(&tick));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store,
                       OpenSqliteStore(data_dir_, OpenMode::kReadOnly));
  store::RetiredQuery all;
  ASSERT_OK_AND_ASSIGN(std::vector<pb::Allocation> stored,
                       store->ReadRetired(all));
  store.reset();
  ASSERT_EQ(stored.size(), 1u);
  // Paid to another provider, as a forger redirecting settlement would.
  stored[0].set_provider_id("PR-000009");
  const std::string body = stored[0].SerializeAsString();
  ASSERT_NO_FATAL_FAILURE(
      Execute(absl::StrCat("UPDATE retired_allocations SET body = X'",
                           absl::BytesToHexString(body), "'")));
  core::StateMachine fresh;
  ReplayReport report;
  ASSERT_NO_FATAL_FAILURE(ReplayStore(&report, fresh));
  EXPECT_THAT(report.violations,
              ElementsAre(::testing::AllOf(
                  HasSubstr("retired allocation AL-00000001 differs from what "
                            "command"),
                  NamesCommand(tick))))
      << absl::StrJoin(report.violations, "\n");
}

// Readers find a retired allocation by its enterprise, provider, cluster
// and voucher columns; a row moved to another enterprise, or whose view
// does not parse, is a break, not an error.
TEST_F(ReplayTest, RetiredRowsUnderOtherColumnsOrUnreadableAreReported) {
  int64_t tick = 0;
  ASSERT_NO_FATAL_FAILURE(AppendRetirement(&tick));
  ASSERT_NO_FATAL_FAILURE(
      Execute("UPDATE retired_allocations SET enterprise_id = 'E-000002'"));
  core::StateMachine fresh;
  ReplayReport report;
  ASSERT_NO_FATAL_FAILURE(ReplayStore(&report, fresh));
  EXPECT_THAT(report.violations,
              ElementsAre(::testing::AllOf(
                  HasSubstr("retired allocation AL-00000001"),
                  NamesCommand(tick), HasSubstr("other than its own"))))
      << absl::StrJoin(report.violations, "\n");

  ASSERT_NO_FATAL_FAILURE(Execute(
      "UPDATE retired_allocations SET enterprise_id = 'E-000001', "
      "body = X'FF'"));
  core::StateMachine again;
  ASSERT_NO_FATAL_FAILURE(ReplayStore(&report, again));
  EXPECT_THAT(report.violations, Contains(HasSubstr("does not parse")))
      << absl::StrJoin(report.violations, "\n");
}

TEST_F(ReplayTest, DeletedOrExtraRetiredAllocationIsReported) {
  int64_t tick = 0;
  ASSERT_NO_FATAL_FAILURE(AppendRetirement(&tick));
  ASSERT_NO_FATAL_FAILURE(Execute(
      "INSERT INTO retired_allocations SELECT 'AL-00000099', enterprise_id, "
      "provider_id, cluster_id, voucher_id, retired_ns, body FROM "
      "retired_allocations"));
  core::StateMachine fresh;
  ReplayReport report;
  ASSERT_NO_FATAL_FAILURE(ReplayStore(&report, fresh));
  EXPECT_THAT(report.violations,
              ElementsAre("the store holds 2 retired allocations; the stored "
                          "commands retire 1"));

  ASSERT_NO_FATAL_FAILURE(Execute("DELETE FROM retired_allocations"));
  core::StateMachine again;
  ASSERT_NO_FATAL_FAILURE(ReplayStore(&report, again));
  EXPECT_THAT(report.violations,
              Contains(::testing::AllOf(
                  HasSubstr("retired allocation AL-00000001, retired by "
                            "command"),
                  NamesCommand(tick), HasSubstr("missing from the store"))))
      << absl::StrJoin(report.violations, "\n");
}

// Retired vouchers likewise: checked against what the commands retire,
// found under their own columns, counted.
// Audit events are stored from the upgrade that added them on: the
// commands before the first stored one have none, and from it on each
// command people sent must have its own, and no other command one.
TEST_F(ReplayTest, AuditEventsAreCheckedFromTheFirstStoredOn) {
  // The events of the commands from the voucher issue on (the issue and the
  // allocation; the usage report has none), as a scheduler upgraded just
  // before would have stored them.
  core::StateMachine again;
  std::vector<pb::AuditEvent> events;
  for (const pb::Command& c : driver_.log()) {
    ASSERT_OK_AND_ASSIGN(const core::Outcome o, again.Apply(c));
    if (c.sequence() < IssueSequence()) continue;
    if (auto e = core::AuditEventOf(c, o.response.get())) events.push_back(*e);
  }
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].method(), "issue_voucher");
  EXPECT_EQ(events[1].method(), "allocate");
  EXPECT_EQ(events[1].object_id(), "AL-00000001");
  auto insert = [&](const pb::AuditEvent& e) {
    Execute(absl::StrFormat(
        "INSERT INTO audit_log VALUES ('%019d', '%s', '%s', '%s', %d, X'%s')",
        e.sequence(), e.principal().token_id(), e.object_id(), e.method(),
        absl::ToUnixNanos(*FromProto("time", e.time())),
        absl::BytesToHexString(e.SerializeAsString())));
  };
  for (const pb::AuditEvent& e : events) ASSERT_NO_FATAL_FAILURE(insert(e));
  core::StateMachine fresh;
  ReplayReport report;
  ASSERT_NO_FATAL_FAILURE(ReplaySound(&report, fresh));
  EXPECT_EQ(report.audit_events, 2);

  // Said to be another token's.
  pb::AuditEvent forged = events[1];
  forged.mutable_principal()->set_token_id("TK-000009");
  ASSERT_NO_FATAL_FAILURE(
      Execute(absl::StrCat("UPDATE audit_log SET body = X'",
                           absl::BytesToHexString(forged.SerializeAsString()),
                           "' WHERE method = 'allocate'")));
  core::StateMachine changed;
  ASSERT_NO_FATAL_FAILURE(ReplayStore(&report, changed));
  EXPECT_THAT(
      report.violations,
      ElementsAre(absl::StrCat("audit event of command ", events[1].sequence(),
                               " differs from the command's")));
  // Gone; and one for the usage report, which sends none.
  ASSERT_NO_FATAL_FAILURE(
      Execute("DELETE FROM audit_log WHERE method = 'allocate'"));
  pb::AuditEvent extra = events[1];
  extra.set_sequence(driver_.log().back().sequence());
  ASSERT_NO_FATAL_FAILURE(insert(extra));
  core::StateMachine gone;
  ASSERT_NO_FATAL_FAILURE(ReplayStore(&report, gone));
  EXPECT_THAT(
      report.violations,
      ElementsAre(absl::StrCat("audit event of command ", events[1].sequence(),
                               " is missing from the store"),
                  absl::StrCat("audit event of command ", extra.sequence(),
                               " is stored, but that command sends "
                               "none")));
}

// Counts the reads of the audit log.
class CountedAudit final : public store::RetiredRecords {
 public:
  explicit CountedAudit(store::RetiredRecords& base) : base_(base) {}
  absl::StatusOr<std::vector<pb::Allocation>> ReadRetired(
      const store::RetiredQuery& query) override {
    return base_.ReadRetired(query);
  }
  absl::StatusOr<std::vector<pb::Voucher>> ReadRetiredVouchers(
      const store::RetiredVoucherQuery& query) override {
    return base_.ReadRetiredVouchers(query);
  }
  absl::StatusOr<std::vector<pb::AuditEvent>> ReadAudit(
      const store::AuditQuery& query) override {
    ++reads;
    return base_.ReadAudit(query);
  }
  int reads = 0;

 private:
  store::RetiredRecords& base_;
};

TEST_F(ReplayTest, TheAuditLogIsReadAPageAtATimeNotOncePerCommand) {
  // No events stored: replay used to ask the store again for every command.
  ASSERT_GT(driver_.log().size(), 10u);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store,
                       OpenSqliteStore(data_dir_, OpenMode::kReadOnly));
  CountedAudit audit(*store);
  core::StateMachine fresh;
  ASSERT_OK_AND_ASSIGN(const ReplayReport report,
                       Replay(*store, *store, audit, fresh));
  EXPECT_THAT(report.violations, IsEmpty());
  EXPECT_EQ(report.commands, static_cast<int64_t>(driver_.log().size()));
  EXPECT_LE(audit.reads, 2);
}

TEST_F(ReplayTest, RetiredVouchersAreCheckedAndCounted) {
  int64_t tick = 0;
  int64_t voucher_tick = 0;
  ASSERT_NO_FATAL_FAILURE(AppendRetirement(&tick, &voucher_tick));
  core::StateMachine fresh;
  ReplayReport report;
  ASSERT_NO_FATAL_FAILURE(ReplaySound(&report, fresh));
  EXPECT_EQ(report.retired_vouchers, 1);
  EXPECT_EQ(fresh.Digest(), state_.Digest());

  // Its charges lowered, as a forger hiding spending would.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store,
                       OpenSqliteStore(data_dir_, OpenMode::kReadOnly));
  ASSERT_OK_AND_ASSIGN(
      std::vector<pb::Voucher> stored,
      store->ReadRetiredVouchers(store::RetiredVoucherQuery()));
  store.reset();
  ASSERT_EQ(stored.size(), 1u);
  const std::string id = stored[0].voucher_id();
  stored[0].set_charged_fen(0);
  ASSERT_NO_FATAL_FAILURE(Execute(absl::StrCat(
      "UPDATE retired_vouchers SET body = X'",
      absl::BytesToHexString(stored[0].SerializeAsString()), "'")));
  core::StateMachine changed;
  ASSERT_NO_FATAL_FAILURE(ReplayStore(&report, changed));
  EXPECT_THAT(report.violations,
              ElementsAre(::testing::AllOf(
                  HasSubstr("retired voucher " + id + " differs from what"),
                  NamesCommand(voucher_tick))))
      << absl::StrJoin(report.violations, "\n");

  // Listed as revoked instead of expired; then an extra one; then none.
  ASSERT_NO_FATAL_FAILURE(
      Execute("UPDATE retired_vouchers SET state = 'VOUCHER_STATE_REVOKED'"));
  core::StateMachine moved;
  ASSERT_NO_FATAL_FAILURE(ReplayStore(&report, moved));
  EXPECT_THAT(
      report.violations,
      ElementsAre(::testing::AllOf(
          HasSubstr("retired voucher " + id), NamesCommand(voucher_tick),
          HasSubstr("state or time other than its own"))))
      << absl::StrJoin(report.violations, "\n");
  ASSERT_NO_FATAL_FAILURE(Execute(
      "INSERT INTO retired_vouchers SELECT 'CV-2099-000001', program_id, "
      "enterprise_id, state, retired_ns, body FROM retired_vouchers"));
  core::StateMachine extra;
  ASSERT_NO_FATAL_FAILURE(ReplayStore(&report, extra));
  EXPECT_THAT(report.violations,
              Contains("the store holds 2 retired vouchers; the stored "
                       "commands retire 1"));
  ASSERT_NO_FATAL_FAILURE(Execute("DELETE FROM retired_vouchers"));
  core::StateMachine none;
  ASSERT_NO_FATAL_FAILURE(ReplayStore(&report, none));
  EXPECT_THAT(
      report.violations,
      Contains(::testing::AllOf(
          HasSubstr("retired voucher " + id + ", retired by command"),
          NamesCommand(voucher_tick), HasSubstr("missing from the store"))))
      << absl::StrJoin(report.violations, "\n");
}

TEST_F(ReplayTest, DeletedLastCommandIsReported) {
  // The usage report, whose charge stays in the journal.
  const int64_t last = driver_.log().back().sequence();
  ASSERT_NO_FATAL_FAILURE(ForgeWithout(last));
  core::StateMachine fresh;
  ReplayReport report;
  ASSERT_NO_FATAL_FAILURE(ReplayStore(&report, fresh));
  EXPECT_EQ(report.commands, last - 1);
  EXPECT_THAT(report.violations,
              Contains(::testing::AllOf(NamesEntry(entries_),
                                        HasSubstr("no stored command"))))
      << absl::StrJoin(report.violations, "\n");
}

// A command removed from the middle of the log leaves a gap in the command
// sequences; Replay must report it by its sequence, even when the commands
// after it still apply.
TEST_F(ReplayTest, DeletedCommandThatPostedNothingIsReported) {
  // Command 6 registers enterprise E-000003, which nothing later uses, and
  // posts no journal entry.
  ASSERT_TRUE(driver_.log()[5].has_register_enterprise());
  ASSERT_EQ(driver_.log()[5].register_enterprise().category(), "科研平台");
  ASSERT_NO_FATAL_FAILURE(ForgeWithout(6));
  core::StateMachine fresh;
  ReplayReport report;
  ASSERT_NO_FATAL_FAILURE(ReplayStore(&report, fresh));
  EXPECT_THAT(report.violations, Not(IsEmpty()))
      << "a store missing command 6 replays as sound";
  EXPECT_THAT(report.violations, Contains(NamesCommand(6)))
      << absl::StrJoin(report.violations, "\n");
}

TEST_F(ReplayTest, DeletedCommandThatPostedEntriesIsReported) {
  // The voucher issue, whose entry stays in the journal and whose voucher
  // the allocation after it draws on.
  const int64_t issue = IssueSequence();
  ASSERT_TRUE(driver_.log()[issue - 1].has_issue_voucher());
  ASSERT_NO_FATAL_FAILURE(ForgeWithout(issue));
  core::StateMachine fresh;
  ReplayReport report;
  ASSERT_NO_FATAL_FAILURE(ReplayStore(&report, fresh));
  ASSERT_THAT(report.violations, Not(IsEmpty()));
  // The issue's entry (journal entry 2) is left without its command.
  EXPECT_THAT(report.violations, Contains(NamesEntry(2)))
      << absl::StrJoin(report.violations, "\n");
  EXPECT_THAT(report.violations, Contains(NamesCommand(issue)))
      << absl::StrJoin(report.violations, "\n");
}

// A store's command log that hands out at most one journal entry a read, as
// the interface allows: every entry a command posts after its first lies
// beyond the chunk the replay holds.
class OneEntryAtATime final : public ForwardingLog {
 public:
  using ForwardingLog::ForwardingLog;
  absl::StatusOr<std::vector<pb::JournalEntry>> ReadJournal(
      int64_t after, int limit) override {
    ++reads;
    return ForwardingLog::ReadJournal(after, std::min(limit, 1));
  }
  int reads = 0;
};

TEST_F(ReplayTest, EntriesOfOneCommandReadAcrossChunksReplayTheSame) {
  // One more report, of three records: three charges posted by one command.
  const core::AllocationRec* rec = state_.placement().Find("AL-00000001");
  ASSERT_NE(rec, nullptr);
  ASSERT_OK_AND_ASSIGN(const absl::Time assigned,
                       FromProto("assigned_at", rec->allocation.assigned_at()));
  pb::Command three = ::computevoucher::testing::NewCommand(
      ::computevoucher::testing::AgentPrincipal(rec->allocation.cluster_id()),
      "three-records");
  for (int64_t n = 2; n <= 4; ++n) {
    pb::UsageRecord* u = three.mutable_report_usage()->add_records();
    u->set_allocation_id("AL-00000001");
    u->set_sequence(n);
    *u->mutable_start() = ToProto(assigned + absl::Minutes(n - 1));
    *u->mutable_end() = ToProto(assigned + absl::Minutes(n));
    u->set_gpu_ms(60'000);
  }
  driver_.Advance(absl::Minutes(5));
  ASSERT_THAT(driver_.Apply(std::move(three)), IsOk());
  Batch batch;
  batch.commands.push_back(driver_.log().back());
  batch.entries = state_.TakeJournal();
  batch.usage = state_.TakeUsage();
  ASSERT_EQ(batch.entries.size(), 3u);
  entries_ += 3;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> store,
                       OpenSqliteStore(data_dir_, OpenMode::kReadWrite));
  ASSERT_THAT(store->Append(batch), IsOk());

  OneEntryAtATime log(*store);
  core::StateMachine fresh;
  ASSERT_OK_AND_ASSIGN(const ReplayReport report,
                       Replay(log, *store, *store, fresh));
  EXPECT_THAT(report.violations, IsEmpty())
      << absl::StrJoin(report.violations, "\n");
  EXPECT_GE(log.reads, entries_);
  EXPECT_EQ(report.entries, entries_);
  EXPECT_EQ(report.last_hash, state_.ledger().last_hash());
  EXPECT_EQ(fresh.Digest(), state_.Digest());
}

}  // namespace
}  // namespace computevoucher::engine
