#include "tests/scheduler/store/store_fixture.h"

#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/time_util.h"
#include "scheduler/core/state_machine.h"
#include "tests/testing/world.h"

namespace computevoucher::store {

using ::computevoucher::testing::Driver;
using ::computevoucher::testing::IsOk;

void MakeHistory(History* out) {
  core::StateMachine state;
  Driver driver(state);
  ASSERT_THAT(driver.BuildWorld(), IsOk());
  driver.Advance(absl::Seconds(1) + absl::Nanoseconds(123'456'789));
  ASSERT_OK_AND_ASSIGN(const pb::Voucher voucher,
                       driver.Issue("P-000001", "E-000001", 100'000));
  driver.Advance(absl::Milliseconds(250) + absl::Nanoseconds(7));
  ASSERT_OK_AND_ASSIGN(const pb::Allocation allocation,
                       driver.Allocate("E-000001", "H100", 1, 3600, false,
                                       voucher.voucher_id()));
  ASSERT_OK_AND_ASSIGN(const absl::Time assigned,
                       FromProto("assigned_at", allocation.assigned_at()));
  driver.Advance(absl::Minutes(1));
  ASSERT_OK_AND_ASSIGN(
      const pb::UsageAck ack,
      driver.Report(allocation.cluster_id(), allocation.allocation_id(), 1,
                    assigned, assigned + absl::Minutes(1), 60'000));
  ASSERT_EQ(ack.result(), pb::USAGE_RESULT_ACCEPTED) << ack.ShortDebugString();
  driver.Advance(absl::Seconds(3) + absl::Nanoseconds(999'999'999));
  ASSERT_THAT(driver.Release("E-000001", allocation.allocation_id()), IsOk());
  out->commands = driver.log();
  out->entries = state.TakeJournal();
  ASSERT_GE(out->commands.size(), 10u);
  ASSERT_GE(out->entries.size(), 4u);
}

std::vector<Batch> PerCommandBatches(const History& history) {
  std::map<int64_t, Batch> by_command;
  for (const pb::Command& c : history.commands) {
    by_command[c.sequence()].commands.push_back(c);
  }
  for (const pb::JournalEntry& e : history.entries) {
    by_command[e.command_sequence()].entries.push_back(e);
  }
  std::vector<Batch> out;
  for (auto& [sequence, batch] : by_command) out.push_back(std::move(batch));
  return out;
}

Batch WholeBatch(const History& history) {
  return Batch{history.commands, history.entries, {}, {}, {}, {}};
}

std::vector<Batch> UsageBatches(const History& history, absl::Time base) {
  std::vector<Batch> batches = PerCommandBatches(history);
  for (size_t i = 0; i < batches.size(); ++i) {
    for (int j = 0; j < 2; ++j) {
      pb::ChargedUsage& u = batches[i].usage.emplace_back();
      const int64_t n = static_cast<int64_t>(i) * 2 + j;
      pb::UsageRecord& r = *u.mutable_record();
      r.set_allocation_id(j == 0 ? "A-even" : "A-odd");
      r.set_sequence(n + 1);
      *r.mutable_start() = ToProto(base + absl::Minutes(n - 1));
      *r.mutable_end() = ToProto(base + absl::Minutes(n));
      r.set_gpu_ms(60'000 + n);
      // The runtime's evidence is kept with the record (none on some).
      if (j == 0) r.set_evidence(absl::StrCat("slurm job ", n, " RUNNING; 算"));
      u.set_cost_fen(100 + n);
      *u.mutable_accepted_at() =
          ToProto(base + absl::Minutes(n) + absl::Nanoseconds(n));
    }
  }
  return batches;
}

}  // namespace computevoucher::store
