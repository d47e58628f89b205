// History that leaves the hot path, through the API (issue 15): once an
// ended allocation leaves the scheduler's memory (item 2), every reader
// still answers it from the store, as before and after a restart, and late
// usage for it is refused; once the log's oldest part is archived (item 4),
// statements and settlement of archived days answer as before and verify
// replays the archive's files, refusing changed ones.
#include <sqlite3.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/time_util.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "scheduler/engine/archive.h"
#include "scheduler/store/open_store.h"
#include "scheduler/verify_command.h"
#include "tests/scheduler/api/api_fixture.h"

namespace computevoucher::testing {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t kRetainS = 3600;

class RetirementApiTest : public ApiTest {
 protected:
  void Configure(pb::SchedulerConfig& config) override {
    config.set_retain_ended_s(kRetainS);
    config.set_usage_grace_s(300);
  }
  void SetUp() override {
    ApiTest::SetUp();
    BuildWorld();
    Issue("E-000003", 10'000'00);
  }

  pb::Allocation Allocate(const std::string& model) {
    pb::AllocateRequest r;
    r.set_request_id(NextRequestId());
    r.mutable_resources()->set_gpu_model(model);
    r.mutable_resources()->set_gpu_count(1);
    r.mutable_resources()->set_max_duration_s(24 * 3600);
    pb::Allocation a;
    grpc::Status s = enterprise_->Allocate(As(e3_token_).get(), r, &a);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return a;
  }

  grpc::Status Get(const std::string& token, const std::string& id,
                   pb::Allocation* out) {
    pb::GetAllocationRequest r;
    r.set_allocation_id(id);
    return enterprise_->GetAllocation(As(token).get(), r, out);
  }

  // Every allocation of E-000003 in `state`, a page of one at a time.
  std::vector<std::string> ListAll(pb::AllocationState state) {
    std::vector<std::string> ids;
    pb::ListAllocationsRequest r;
    r.set_state(state);
    r.mutable_page()->set_page_size(1);
    for (int pages = 0; pages < 10; ++pages) {
      pb::ListAllocationsResponse page;
      grpc::Status s =
          enterprise_->ListAllocations(As(e3_token_).get(), r, &page);
      EXPECT_TRUE(s.ok()) << s.error_message();
      for (const pb::Allocation& a : page.allocations())
        ids.push_back(a.allocation_id());
      if (page.next_page_token().empty()) break;
      r.mutable_page()->set_page_token(page.next_page_token());
    }
    return ids;
  }

  // Ticks after hz-a's agent beat, so that its cluster stays connected.
  void BeatAndTick() {
    pb::HeartbeatRequest r;
    r.set_request_id(NextRequestId());
    pb::HeartbeatResponse out;
    grpc::Status s = agent_->Heartbeat(As(hz_token_).get(), r, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    server_->TickNow();
  }

  pb::UsageAck ReportOne(const std::string& id, int64_t sequence,
                         absl::Time start, absl::Time end) {
    pb::ReportUsageRequest report;
    report.set_request_id(NextRequestId());
    pb::UsageRecord* u = report.add_records();
    u->set_allocation_id(id);
    u->set_sequence(sequence);
    *u->mutable_start() = ToProto(start);
    *u->mutable_end() = ToProto(end);
    u->set_gpu_ms(absl::ToInt64Milliseconds(end - start));
    pb::ReportUsageResponse acks;
    grpc::Status s = agent_->ReportUsage(As(hz_token_).get(), report, &acks);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return acks.acks_size() == 1 ? acks.acks(0) : pb::UsageAck();
  }

  pb::Statement Statement(absl::Time from, absl::Time until) {
    pb::GetStatementRequest r;
    *r.mutable_period_start() = ToProto(from);
    *r.mutable_period_end() = ToProto(until);
    pb::Statement out;
    grpc::Status s = enterprise_->GetStatement(As(e3_token_).get(), r, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
  }

  pb::Settlement Settlement(absl::Time from, absl::Time until) {
    pb::GetSettlementRequest r;
    r.set_provider_id("PR-000001");
    *r.mutable_period_start() = ToProto(from);
    *r.mutable_period_end() = ToProto(until);
    pb::Settlement out;
    grpc::Status s = admin_->GetSettlement(As(admin_token_).get(), r, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    out.clear_journal_sequence();
    out.clear_journal_hash();
    return out;
  }
  // An allocation used for 10 minutes on March 1 (ended the next day), and
  // another used for 10 minutes on April 10.
  void UseInMarchAndApril() {
    const pb::Allocation early = Allocate("910B");
    const absl::Time t0 = *FromProto("assigned_at", early.assigned_at());
    clock_.Advance(absl::Minutes(10));
    ASSERT_EQ(ReportOne(early.allocation_id(), 1, t0, t0 + absl::Minutes(10))
                  .result(),
              pb::USAGE_RESULT_ACCEPTED);
    clock_.Advance(absl::Hours(24 * 40));
    BeatAndTick();
    const pb::Allocation late = Allocate("910B");
    const absl::Time t1 = *FromProto("assigned_at", late.assigned_at());
    clock_.Advance(absl::Minutes(10));
    ASSERT_EQ(
        ReportOne(late.allocation_id(), 1, t1, t1 + absl::Minutes(10)).result(),
        pb::USAGE_RESULT_ACCEPTED);
  }

  // Starts the server again after a test stopped it, and reconnects.
  void StartAgain() {
    absl::StatusOr<std::unique_ptr<scheduler::SchedulerServer>> started =
        scheduler::SchedulerServer::Start(config_, clock_);
    ASSERT_TRUE(started.ok()) << started.status();
    server_ = *std::move(started);
    Connect();
  }

  // verify replays the archive's files, then the store, beside the running
  // scheduler; without them it asks for them; a changed part is refused.
  void ExpectVerifiedFromFilesAndChangedOnesRefused(
      const std::string& archives, const engine::ArchiveReport& report) {
    std::ostringstream out;
    EXPECT_EQ(scheduler::RunVerify(config_, archives, out), 0) << out.str();
    EXPECT_THAT(out.str(), HasSubstr("archives:          1"));
    EXPECT_THAT(out.str(), HasSubstr("OK: every invariant holds"));
    std::ostringstream without;
    EXPECT_EQ(scheduler::RunVerify(config_, "", without), 2);
    EXPECT_THAT(without.str(), HasSubstr("--archive"));

    // A changed part is refused.
    const std::string part =
        report.directory + "/" + report.manifest.parts(0).file();
    std::string bytes;
    {
      std::ifstream in(part, std::ios::binary);
      bytes.assign(std::istreambuf_iterator<char>(in), {});
    }
    bytes[bytes.size() / 2] ^= 1;
    std::ofstream(part, std::ios::binary | std::ios::trunc) << bytes;
    std::ostringstream changed;
    EXPECT_EQ(scheduler::RunVerify(config_, archives, changed), 1)
        << changed.str();
    EXPECT_THAT(changed.str(), HasSubstr("changed after it was written"));
  }

  // The admin's VerifyJournal call.
  pb::VerifyJournalResponse VerifyJournal() {
    pb::VerifyJournalResponse verified;
    const grpc::Status s = admin_->VerifyJournal(
        As(admin_token_).get(), pb::VerifyJournalRequest(), &verified);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return verified;
  }

  // The auditor lists `id` first among hz-a's two allocations, and its one
  // usage record is listed with who used it.
  void ExpectListedWithItsUsage(const std::string& id) {
    pb::AdminListAllocationsRequest admin_list;
    admin_list.set_cluster_id("hz-a");
    pb::AdminListAllocationsResponse listed;
    ASSERT_TRUE(
        admin_->ListAllocations(As(auditor_token_).get(), admin_list, &listed)
            .ok());
    ASSERT_EQ(listed.allocations_size(), 2);
    EXPECT_EQ(listed.allocations(0).allocation_id(), id);
    pb::ListUsageRequest usage;
    usage.set_allocation_id(id);
    pb::ListUsageResponse page;
    ASSERT_TRUE(enterprise_->ListUsage(As(e3_token_).get(), usage, &page).ok());
    ASSERT_EQ(page.usage_size(), 1);
    EXPECT_EQ(page.usage(0).enterprise_id(), "E-000003");
    EXPECT_EQ(page.usage(0).provider_id(), "PR-000001");
  }
};

TEST_F(RetirementApiTest, ARetiredAllocationIsStillReadEverywhere) {
  const absl::Time from = clock_.Now();
  const pb::Allocation retiring = Allocate("910B");  // on hz-a
  const pb::Allocation staying = Allocate("910B");
  const std::string id = retiring.allocation_id();
  const absl::Time t0 = *FromProto("assigned_at", retiring.assigned_at());
  clock_.Advance(absl::Minutes(10));
  ASSERT_EQ(ReportOne(id, 1, t0, t0 + absl::Minutes(10)).result(),
            pb::USAGE_RESULT_ACCEPTED);
  pb::ReleaseAllocationRequest release;
  release.set_request_id(NextRequestId());
  release.set_allocation_id(id);
  pb::Allocation released;
  ASSERT_TRUE(
      enterprise_->ReleaseAllocation(As(e3_token_).get(), release, &released)
          .ok());
  clock_.Advance(absl::Seconds(301));
  BeatAndTick();  // the hold goes back after the grace period
  pb::Allocation ended;
  ASSERT_TRUE(Get(e3_token_, id, &ended).ok());
  ASSERT_EQ(ended.held_fen(), 0);
  ASSERT_GT(ended.charged_fen(), 0);
  const absl::Time until = clock_.Now() + absl::Hours(24);
  const pb::Statement statement = Statement(from, until);
  ASSERT_EQ(statement.lines_size(), 1);
  const pb::Settlement settlement = Settlement(from, until);
  ASSERT_GT(settlement.total_subsidy_fen(), 0);

  clock_.Advance(absl::Seconds(kRetainS));
  const absl::Time retired_at = clock_.Now();
  BeatAndTick();
  // Retired: late usage is refused, naming why.
  const pb::UsageAck late =
      ReportOne(id, 2, t0 + absl::Minutes(10), t0 + absl::Minutes(11));
  EXPECT_EQ(late.result(), pb::USAGE_RESULT_REJECTED);
  EXPECT_THAT(late.reason(), HasSubstr("retired"));

  for (int restart = 0; restart < 2; ++restart) {
    SCOPED_TRACE(restart == 0 ? "retired" : "retired, then restarted");
    pb::Allocation got;
    grpc::Status s = Get(e3_token_, id, &got);
    ASSERT_TRUE(s.ok()) << s.error_message();
    // As it was, and when it was retired.
    EXPECT_EQ(got.retired_at().seconds(), absl::ToUnixSeconds(retired_at));
    got.clear_retired_at();
    EXPECT_TRUE(MessageDifferencer::Equals(got, ended))
        << got.ShortDebugString() << "\nvs\n"
        << ended.ShortDebugString();
    // Another enterprise's is missing, as before.
    EXPECT_EQ(Get(e1_token_, id, &got).error_code(),
              grpc::StatusCode::NOT_FOUND);
    EXPECT_THAT(ListAll(pb::ALLOCATION_STATE_UNSPECIFIED),
                ElementsAre(id, staying.allocation_id()));
    EXPECT_THAT(ListAll(pb::ALLOCATION_STATE_ENDED), ElementsAre(id));
    EXPECT_THAT(ListAll(pb::ALLOCATION_STATE_ASSIGNED),
                ElementsAre(staying.allocation_id()));
    ExpectListedWithItsUsage(id);
    EXPECT_TRUE(MessageDifferencer::Equals(Statement(from, until), statement));
    EXPECT_TRUE(
        MessageDifferencer::Equals(Settlement(from, until), settlement));

    const pb::VerifyJournalResponse verified = VerifyJournal();
    EXPECT_TRUE(verified.ok()) << verified.violations(0);
    Restart();
  }
}

TEST_F(RetirementApiTest, ArchivedDaysStillAnswerAndVerifyFromTheirFiles) {
  const absl::Time march = clock_.Now();  // 2025-03-01 00:00 +08:00
  ASSERT_NO_FATAL_FAILURE(UseInMarchAndApril());
  const absl::Time until = march + absl::Hours(24 * 61);  // a day's start
  const pb::Statement statement = Statement(march, until);
  ASSERT_EQ(statement.lines_size(), 2);
  const pb::Settlement settlement = Settlement(march, until);
  ASSERT_EQ(settlement.lines_size(), 1);
  ASSERT_EQ(settlement.lines(0).records(), 2);

  // Archive March 1..19 from the stopped scheduler's store, on May 20.
  clock_.Advance(absl::Hours(24 * 40));
  server_->Shutdown(absl::ZeroDuration());
  server_.reset();
  const std::string archives = temp_.path() + "/archives";
  const absl::Time before = march + absl::Hours(24 * 19);
  engine::ArchiveReport report;
  {
    auto store = store::OpenStore(config_, store::OpenMode::kReadWrite);
    ASSERT_TRUE(store.ok()) << store.status();
    absl::StatusOr<engine::ArchiveReport> archived =
        engine::ArchiveBefore(**store, clock_, before, archives);
    ASSERT_TRUE(archived.ok()) << archived.status();
    report = *archived;
    EXPECT_TRUE(report.archived);
    EXPECT_GT(report.commands, 10);
    EXPECT_GT(report.entries, 3);
    EXPECT_EQ(report.usage_records, 1);
    // The range is gone: a second run finds nothing more before the date.
    archived = engine::ArchiveBefore(**store, clock_, before, archives);
    ASSERT_TRUE(archived.ok()) << archived.status();
    EXPECT_FALSE(archived->archived);
    // An open period is refused, naming the flag.
    archived = engine::ArchiveBefore(
        **store, clock_, clock_.Now() - absl::Hours(24 * 30), archives);
    EXPECT_EQ(archived.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(archived.status().message(), HasSubstr("--before"));
  }
  ASSERT_NO_FATAL_FAILURE(StartAgain());

  // Statement and settlement of periods reaching into archived days answer
  // as before, from the day sums and the records still stored.
  EXPECT_TRUE(MessageDifferencer::Equals(Statement(march, until), statement))
      << Statement(march, until).ShortDebugString();
  EXPECT_TRUE(MessageDifferencer::Equals(Settlement(march, until), settlement));
  // The archived record was accepted at 00:10 on March 1: a period starting
  // before that must start on a day.
  pb::GetStatementRequest mid_day;
  *mid_day.mutable_period_start() = ToProto(march - absl::Hours(12));
  *mid_day.mutable_period_end() = ToProto(until);
  pb::Statement refused;
  const grpc::Status s =
      enterprise_->GetStatement(As(e3_token_).get(), mid_day, &refused);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("period_start"));
  EXPECT_THAT(s.error_message(), HasSubstr("archived"));
  // The API's check starts from the snapshot stored after the archive.
  const pb::VerifyJournalResponse verified = VerifyJournal();
  EXPECT_TRUE(verified.ok()) << verified.violations(0);
  EXPECT_GE(verified.from_snapshot(), report.manifest.through().command());

  ExpectVerifiedFromFilesAndChangedOnesRefused(archives, report);
}

// A crash after the anchor is durable but before the store dropped the
// range: the next run writes the same files, finds the anchor and only
// drops; verify then finds the anchored hash equal to the manifest's.
TEST_F(RetirementApiTest, AnArchiveStoppedBeforeItsDropIsFinishedByTheNextRun) {
  const absl::Time march = clock_.Now();
  ASSERT_NO_FATAL_FAILURE(UseInMarchAndApril());
  clock_.Advance(absl::Hours(24 * 40));
  server_->Shutdown(absl::ZeroDuration());
  server_.reset();
  const std::string db = config_.data_dir() + "/scheduler.db";
  auto exec = [&db](const char* sql) {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(db.c_str(), &raw), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(raw, sql, nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(raw);
    sqlite3_close(raw);
  };
  exec(
      "CREATE TRIGGER crash BEFORE INSERT ON archive_horizon BEGIN SELECT "
      "RAISE(ABORT, 'crashed before the drop'); END");
  const std::string archives = temp_.path() + "/archives";
  const absl::Time before = march + absl::Hours(24 * 19);
  int64_t anchored_head = 0;
  {
    auto store = store::OpenStore(config_, store::OpenMode::kReadWrite);
    ASSERT_TRUE(store.ok()) << store.status();
    const int64_t head = (*store)->ReadHead()->command_sequence;
    const absl::StatusOr<engine::ArchiveReport> crashed =
        engine::ArchiveBefore(**store, clock_, before, archives);
    EXPECT_THAT(crashed.status().message(), HasSubstr("crashed before"));
    anchored_head = (*store)->ReadHead()->command_sequence;
    EXPECT_EQ(anchored_head, head + 1);  // the anchor is durable
    EXPECT_FALSE((*store)->ReadHorizon()->has_value());
  }
  exec("DROP TRIGGER crash");
  {
    auto store = store::OpenStore(config_, store::OpenMode::kReadWrite);
    ASSERT_TRUE(store.ok()) << store.status();
    // Another date would archive another range: refused, naming the one
    // anchored.
    const absl::StatusOr<engine::ArchiveReport> other = engine::ArchiveBefore(
        **store, clock_, before + absl::Hours(24), archives);
    EXPECT_EQ(other.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(other.status().message(), HasSubstr("earlier run anchored"));
    const absl::StatusOr<engine::ArchiveReport> finished =
        engine::ArchiveBefore(**store, clock_, before, archives);
    ASSERT_TRUE(finished.ok()) << finished.status();
    EXPECT_TRUE(finished->archived);
    EXPECT_TRUE(finished->resumed);
    EXPECT_EQ((*store)->ReadHead()->command_sequence, anchored_head);
    EXPECT_TRUE((*store)->ReadHorizon()->has_value());
  }
  std::ostringstream out;
  EXPECT_EQ(scheduler::RunVerify(config_, archives, out), 0) << out.str();
  // The day sums statements read are checked against the archived records.
  exec("UPDATE usage_days SET cost_fen = cost_fen + 1");
  std::ostringstream changed;
  EXPECT_EQ(scheduler::RunVerify(config_, archives, changed), 1)
      << changed.str();
  EXPECT_THAT(changed.str(), HasSubstr("the store's day sums say"));
}

}  // namespace
}  // namespace computevoucher::testing
