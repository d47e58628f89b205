// The fixture of the tests of a program's history through the API
// (issue 15): retired allocations and vouchers (retirement_api_test.cc) and
// archived periods (archive_api_test.cc). An in-process scheduler that retires
// allocations an hour after they end, with helpers to allocate, report
// usage, read statements and settlements, and verify.
#ifndef COMPUTEVOUCHER_TESTS_SCHEDULER_API_HISTORY_FIXTURE_H_
#define COMPUTEVOUCHER_TESTS_SCHEDULER_API_HISTORY_FIXTURE_H_

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/time_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/engine/archive.h"
#include "scheduler/verify_command.h"
#include "tests/scheduler/api/api_fixture.h"
#include "tests/scheduler/store/store_backend.h"

namespace computevoucher::testing {

inline constexpr int64_t kRetainS = 3600;

class HistoryApiTest : public ApiTest {
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
    // Heartbeats the log keeps (each changes the access text), with free
    // GPUs of two models: maps, which an archive must write in one order
    // for a run resumed after a crash to write the same bytes.
    for (int i = 0; i < 12; ++i) {
      pb::HeartbeatRequest beat;
      beat.set_request_id(NextRequestId());
      pb::ObservedAllocation& o = *beat.add_allocations();
      o.set_allocation_id(early.allocation_id());
      o.set_access(absl::StrCat("ssh node-", i));
      (*beat.mutable_free_gpus())["H100"] = 8;
      (*beat.mutable_free_gpus())["910B"] = 15 - i;
      beat.set_healthy(true);
      pb::HeartbeatResponse answer;
      const grpc::Status s =
          agent_->Heartbeat(As(hz_token_).get(), beat, &answer);
      ASSERT_TRUE(s.ok()) << s.error_message();
    }
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
    EXPECT_THAT(out.str(), ::testing::HasSubstr("archives:          1"));
    EXPECT_THAT(out.str(), ::testing::HasSubstr("OK: every invariant holds"));
    std::ostringstream without;
    EXPECT_EQ(scheduler::RunVerify(config_, "", without), 2);
    EXPECT_THAT(without.str(), ::testing::HasSubstr("--archive"));

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
    EXPECT_THAT(changed.str(),
                ::testing::HasSubstr("changed after it was written"));
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

// HistoryApiTest on the store its parameter names (the embedded one, or a
// fresh PostgreSQL database on CV_TEST_POSTGRES_URL's server).
class HistoryOnStoreTest : public HistoryApiTest,
                           public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "postgres" &&
        std::getenv("CV_TEST_POSTGRES_URL") == nullptr) {
      GTEST_SKIP() << "CV_TEST_POSTGRES_URL is unset";
    }
    ASSERT_NO_FATAL_FAILURE(MakeTempDir("history_db", db_root_));
    absl::StatusOr<std::unique_ptr<store::StoreBackend>> backend =
        store::MakeStoreBackend(GetParam(), db_root_.path());
    ASSERT_TRUE(backend.ok()) << backend.status();
    backend_ = *std::move(backend);
    HistoryApiTest::SetUp();
  }
  void Configure(pb::SchedulerConfig& config) override {
    HistoryApiTest::Configure(config);
    config.set_store(backend_->store_url());
    if (GetParam() == "sqlite") config.set_data_dir(db_root_.path() + "/data");
  }

  // Runs `postgres` (or `sqlite`, when given, on the embedded store) on the
  // store's database.
  void Execute(const std::string& postgres, const std::string& sqlite = "") {
    const std::string& sql =
        GetParam() == "sqlite" && !sqlite.empty() ? sqlite : postgres;
    const absl::Status s = backend_->Execute(sql);
    EXPECT_TRUE(s.ok()) << s;
  }

  TempDir db_root_;  // destroyed after the backend
  std::unique_ptr<store::StoreBackend> backend_;
};

}  // namespace computevoucher::testing

#endif  // COMPUTEVOUCHER_TESTS_SCHEDULER_API_HISTORY_FIXTURE_H_
