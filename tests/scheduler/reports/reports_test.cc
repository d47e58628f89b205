// The reports computed from state and stored usage: usage pages,
// statements, settlement, balances and journal pages, over the standard
// world and a usage index and command log held in memory.
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/time_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/core/state_machine.h"
#include "scheduler/reports/journal.h"
#include "scheduler/reports/offers.h"
#include "scheduler/reports/office.h"
#include "scheduler/reports/usage.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/world.h"

namespace computevoucher::reports {
namespace {

using ::computevoucher::testing::Driver;
using ::computevoucher::testing::IsOk;
using ::computevoucher::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Usage rows in memory, filtered as the stores filter them.
class MemoryUsageIndex final : public store::UsageIndex {
 public:
  void Add(pb::ChargedUsage usage) { rows_.push_back(std::move(usage)); }

  absl::StatusOr<std::vector<store::UsageRow>> ReadUsage(
      const store::UsageQuery& query) override {
    std::vector<store::UsageRow> out;
    for (size_t i = 0; i < rows_.size(); ++i) {
      const int64_t position = static_cast<int64_t>(i) + 1;
      if (position <= query.after || !Matches(query, rows_[i])) continue;
      if (static_cast<int>(out.size()) == query.limit) break;
      out.push_back({position, rows_[i]});
    }
    return out;
  }

  absl::StatusOr<store::Head> ScanUsage(
      const store::UsageQuery& query,
      const std::function<void(const pb::ChargedUsage&)>& fn) override {
    for (const pb::ChargedUsage& u : rows_) {
      if (Matches(query, u)) fn(u);
    }
    return store::Head{7, 42, "head-hash"};
  }

 private:
  static bool Matches(const store::UsageQuery& query,
                      const pb::ChargedUsage& u) {
    const absl::Time end = absl::FromUnixSeconds(u.record().end().seconds());
    return (!query.allocation_ids.has_value() ||
            query.allocation_ids->contains(u.record().allocation_id())) &&
           end >= query.period_start && end < query.period_end;
  }

  std::vector<pb::ChargedUsage> rows_;
};

// Journal entries in memory; appends and commands are not needed here.
class MemoryJournal final : public store::CommandLog {
 public:
  explicit MemoryJournal(std::vector<pb::JournalEntry> entries)
      : entries_(std::move(entries)) {}
  absl::Status Append(const store::Batch&) override {
    return absl::UnimplementedError("read-only");
  }
  absl::StatusOr<std::vector<pb::Command>> ReadCommands(int64_t, int) override {
    return std::vector<pb::Command>();
  }
  absl::StatusOr<std::vector<pb::JournalEntry>> ReadJournal(
      int64_t after, int limit) override {
    std::vector<pb::JournalEntry> out;
    for (const pb::JournalEntry& e : entries_) {
      if (e.sequence() > after && static_cast<int>(out.size()) < limit) {
        out.push_back(e);
      }
    }
    return out;
  }
  absl::StatusOr<store::Head> ReadHead() override { return store::Head(); }
  // Snapshots in a map, without the store's checks against the head.
  absl::Status WriteSnapshot(const store::Snapshot& snapshot,
                             int keep) override {
    if (keep < 1) return absl::InvalidArgumentError("keep must be >= 1");
    if (!snapshots_.empty() &&
        snapshots_.rbegin()->first >= snapshot.position) {
      return absl::FailedPreconditionError("not newer than the last snapshot");
    }
    snapshots_[snapshot.position] = snapshot;
    while (snapshots_.size() > static_cast<size_t>(keep)) {
      snapshots_.erase(snapshots_.begin());
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<int64_t>> ListSnapshots() override {
    std::vector<int64_t> out;
    for (auto it = snapshots_.rbegin(); it != snapshots_.rend(); ++it) {
      out.push_back(it->first);
    }
    return out;
  }
  absl::StatusOr<store::Snapshot> ReadSnapshot(int64_t position) override {
    auto it = snapshots_.find(position);
    if (it == snapshots_.end()) return absl::NotFoundError("no snapshot");
    return it->second;
  }

 private:
  std::vector<pb::JournalEntry> entries_;
  std::map<int64_t, store::Snapshot> snapshots_;
};

class ReportsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_THAT(driver_.BuildWorld(), IsOk());
    ASSERT_THAT(driver_.Issue("P-000001", "E-000001", 1'000'000), IsOk());
    ASSERT_THAT(driver_.Issue("P-000001", "E-000002", 1'000'000), IsOk());
    ASSERT_OK_AND_ASSIGN(mine_, driver_.Allocate("E-000001", "H100", 1, 3600));
    ASSERT_OK_AND_ASSIGN(theirs_,
                         driver_.Allocate("E-000002", "H100", 1, 3600));
    sources_.read_state =
        [this](const std::function<void(const core::StateMachine&)>& fn) {
          fn(state_);
          return absl::OkStatus();
        };
    sources_.usage = &usage_;
  }

  // A stored record of `allocation` ending `end_after` past the world's
  // start.
  void AddUsage(const pb::Allocation& allocation, absl::Duration end_after,
                int64_t gpu_ms, int64_t cost_fen, int64_t subsidy_fen) {
    pb::ChargedUsage u;
    u.mutable_record()->set_allocation_id(allocation.allocation_id());
    *u.mutable_record()->mutable_end() =
        ToProto(testing::WorldStart() + end_after);
    u.mutable_record()->set_gpu_ms(gpu_ms);
    u.set_cost_fen(cost_fen);
    u.set_subsidy_fen(subsidy_fen);
    usage_.Add(std::move(u));
  }

  // A request's period: the world's first day.
  template <typename Request>
  Request FirstDay() {
    Request r;
    *r.mutable_period_start() = ToProto(testing::WorldStart());
    *r.mutable_period_end() = ToProto(testing::WorldStart() + absl::Hours(24));
    return r;
  }

  core::StateMachine state_;
  Driver driver_{state_};
  MemoryUsageIndex usage_;
  Sources sources_;
  pb::Allocation mine_;
  pb::Allocation theirs_;
};

TEST_F(ReportsTest, AStatementSumsTheEnterprisesUsageInThePeriod) {
  AddUsage(mine_, absl::Minutes(10), 600'000, 334, 100);
  AddUsage(mine_, absl::Minutes(20), 600'000, 333, 100);
  AddUsage(mine_, absl::Hours(30), 600'000, 333, 100);  // the next day
  AddUsage(theirs_, absl::Minutes(10), 600'000, 300, 90);
  ASSERT_OK_AND_ASSIGN(
      const pb::Statement statement,
      Statement(sources_, "E-000001", FirstDay<pb::GetStatementRequest>()));
  ASSERT_EQ(statement.lines_size(), 1);
  const pb::StatementLine& line = statement.lines(0);
  EXPECT_EQ(line.allocation_id(), mine_.allocation_id());
  EXPECT_EQ(line.gpu_ms(), 1'200'000);
  EXPECT_EQ(line.amounts().cost_fen(), 667);
  EXPECT_EQ(line.amounts().subsidy_fen(), 200);
  EXPECT_EQ(line.amounts().self_pay_fen(), 467);
  EXPECT_EQ(statement.total().cost_fen(), 667);
  EXPECT_EQ(statement.total().self_pay_fen(), 467);
}

TEST_F(ReportsTest, ATotalThatOverflowsIsAnErrorNotAWrappedFigure) {
  const int64_t max = std::numeric_limits<int64_t>::max();
  AddUsage(mine_, absl::Minutes(10), 1, max, 0);
  AddUsage(mine_, absl::Minutes(20), 1, 1, 0);
  EXPECT_THAT(
      Statement(sources_, "E-000001", FirstDay<pb::GetStatementRequest>()),
      StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("cost_fen")));
  AddUsage(theirs_, absl::Minutes(10), 1, max, max);
  AddUsage(theirs_, absl::Minutes(20), 1, max, max);
  EXPECT_THAT(
      Settlement(sources_, FirstDay<pb::GetSettlementRequest>()),
      StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("subsidy_fen")));
}

TEST_F(ReportsTest, SettlementGroupsByProviderAndNamesTheJournalPosition) {
  AddUsage(mine_, absl::Minutes(10), 600'000, 334, 100);
  AddUsage(theirs_, absl::Minutes(10), 600'000, 300, 90);
  ASSERT_OK_AND_ASSIGN(
      const pb::Settlement all,
      Settlement(sources_, FirstDay<pb::GetSettlementRequest>()));
  EXPECT_EQ(all.total_subsidy_fen(), 190);
  EXPECT_EQ(all.journal_sequence(), 42);
  EXPECT_EQ(all.journal_hash(), "head-hash");
  int64_t records = 0;
  for (const pb::SettlementLine& line : all.lines()) records += line.records();
  EXPECT_EQ(records, 2);

  auto request = FirstDay<pb::GetSettlementRequest>();
  request.set_provider_id(mine_.provider_id());
  ASSERT_OK_AND_ASSIGN(const pb::Settlement one, Settlement(sources_, request));
  ASSERT_EQ(one.lines_size(), 1);
  EXPECT_EQ(one.lines(0).provider_id(), mine_.provider_id());
  request.set_provider_id("PR-999999");
  EXPECT_THAT(Settlement(sources_, request),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("PR-999999")));
}

TEST_F(ReportsTest, AUsageReportGroupsAsAskedAndTotals) {
  AddUsage(mine_, absl::Minutes(10), 600'000, 334, 100);
  AddUsage(mine_, absl::Hours(24 * 40), 600'000, 333, 100);  // in April
  AddUsage(theirs_, absl::Minutes(10), 600'000, 300, 90);
  pb::UsageReportRequest r;
  *r.mutable_period_start() = ToProto(testing::WorldStart());
  *r.mutable_period_end() =
      ToProto(testing::WorldStart() + absl::Hours(24 * 61));
  r.add_group_by(pb::REPORT_GROUP_SME);
  r.add_group_by(pb::REPORT_GROUP_MONTH);
  ASSERT_OK_AND_ASSIGN(const pb::UsageReport by_month,
                       UsageReport(sources_, r));
  ASSERT_EQ(by_month.rows_size(), 3);
  // Sorted by the groups in order: not SME before SME, then by month.
  EXPECT_FALSE(by_month.rows(0).sme());
  EXPECT_EQ(by_month.rows(0).month(), "2025-03");
  EXPECT_EQ(by_month.rows(0).amounts().cost_fen(), 334);
  EXPECT_FALSE(by_month.rows(1).sme());
  EXPECT_EQ(by_month.rows(1).month(), "2025-04");
  EXPECT_TRUE(by_month.rows(2).sme());
  EXPECT_EQ(by_month.rows(2).amounts().subsidy_fen(), 90);
  EXPECT_EQ(by_month.rows(2).amounts().self_pay_fen(), 210);
  EXPECT_EQ(by_month.rows(2).enterprise_id(), "");  // not a group
  EXPECT_EQ(by_month.total().records(), 3);
  EXPECT_EQ(by_month.total().gpu_ms(), 1'800'000);
  EXPECT_EQ(by_month.total().amounts().cost_fen(), 967);
  EXPECT_EQ(by_month.journal_sequence(), 42);

  // By enterprise, with names and credit codes; only one enterprise's.
  r.clear_group_by();
  r.add_group_by(pb::REPORT_GROUP_ENTERPRISE);
  r.set_enterprise_id("E-000002");
  ASSERT_OK_AND_ASSIGN(const pb::UsageReport theirs, UsageReport(sources_, r));
  ASSERT_EQ(theirs.rows_size(), 1);
  EXPECT_EQ(theirs.rows(0).enterprise_id(), "E-000002");
  EXPECT_EQ(theirs.rows(0).enterprise_name(), "福州灵巧手算法有限公司");
  EXPECT_EQ(theirs.rows(0).enterprise_credit_code(), "91350100M000100Y43");
  EXPECT_EQ(theirs.total().amounts().cost_fen(), 300);

  r.add_group_by(pb::REPORT_GROUP_ENTERPRISE);
  EXPECT_THAT(
      UsageReport(sources_, r),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("given twice")));
  r.clear_group_by();
  r.add_group_by(static_cast<pb::ReportGroup>(99));
  EXPECT_THAT(
      UsageReport(sources_, r),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("group_by: 99")));
}

TEST_F(ReportsTest, ExpiringVouchersComeInPagesWithTotalsOverAll) {
  ASSERT_THAT(driver_.Issue("P-000001", "E-000003", 500), IsOk());
  pb::ListExpiringVouchersRequest r;
  r.set_within_days(3660);  // every voucher ends with the program
  r.mutable_page()->set_page_size(2);
  ASSERT_OK_AND_ASSIGN(const pb::ListExpiringVouchersResponse first,
                       ExpiringVouchers(state_, r));
  ASSERT_EQ(first.vouchers_size(), 2);
  EXPECT_EQ(first.total_vouchers(), 3);
  EXPECT_EQ(first.total_available_fen(),
            1'000'000 * 2 + 500 - mine_.held_fen() - theirs_.held_fen());
  ASSERT_FALSE(first.next_page_token().empty());
  r.mutable_page()->set_page_token(first.next_page_token());
  ASSERT_OK_AND_ASSIGN(const pb::ListExpiringVouchersResponse second,
                       ExpiringVouchers(state_, r));
  ASSERT_EQ(second.vouchers_size(), 1);
  EXPECT_EQ(second.vouchers(0).enterprise_id(), "E-000003");
  EXPECT_EQ(second.total_vouchers(), 3);
  EXPECT_TRUE(second.next_page_token().empty());
  // Within a day, none ends.
  r.clear_page();
  r.set_within_days(1);
  ASSERT_OK_AND_ASSIGN(const pb::ListExpiringVouchersResponse none,
                       ExpiringVouchers(state_, r));
  EXPECT_EQ(none.total_vouchers(), 0);
  r.set_within_days(0);
  EXPECT_THAT(
      ExpiringVouchers(state_, r),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("within_days")));
  r.set_within_days(30);
  r.mutable_page()->set_page_token("garbage");
  EXPECT_THAT(
      ExpiringVouchers(state_, r),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_token")));
}

TEST_F(ReportsTest, UsagePagesContinueAndHideOtherEnterprisesAllocations) {
  for (int i = 1; i <= 3; ++i) {
    AddUsage(mine_, absl::Minutes(i), 60'000, 10, 3);
    AddUsage(theirs_, absl::Minutes(i), 60'000, 10, 3);
  }
  pb::ListUsageRequest request;
  request.mutable_page()->set_page_size(2);
  ASSERT_OK_AND_ASSIGN(const pb::ListUsageResponse first,
                       UsagePage(sources_, "E-000001", request));
  ASSERT_EQ(first.usage_size(), 2);
  EXPECT_EQ(first.usage(0).enterprise_id(), "E-000001");
  EXPECT_EQ(first.usage(0).provider_id(), mine_.provider_id());
  ASSERT_FALSE(first.next_page_token().empty());
  request.mutable_page()->set_page_token(first.next_page_token());
  ASSERT_OK_AND_ASSIGN(const pb::ListUsageResponse second,
                       UsagePage(sources_, "E-000001", request));
  EXPECT_EQ(second.usage_size(), 1);
  EXPECT_TRUE(second.next_page_token().empty());

  request.clear_page();
  request.set_allocation_id(theirs_.allocation_id());
  EXPECT_THAT(UsagePage(sources_, "E-000001", request),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr(theirs_.allocation_id())));
}

TEST_F(ReportsTest, ABalanceSumsHeldAndAvailableOverTheEnterprisesVouchers) {
  ASSERT_OK_AND_ASSIGN(const pb::Balance balance, Balance(state_, "E-000001"));
  EXPECT_EQ(balance.active_vouchers(), 1);
  EXPECT_GT(balance.held_fen(), 0);
  EXPECT_EQ(balance.available_fen() + balance.held_fen(), 1'000'000);
  EXPECT_EQ(balance.charged_fen(), 0);
}

// "H100 hz-a 2000 8/6": model, cluster, price, GPUs and free GPUs.
std::vector<std::string> OfferLines(const pb::ListOffersResponse& offers) {
  std::vector<std::string> lines;
  for (const pb::Offer& o : offers.offers()) {
    lines.push_back(absl::StrCat(o.gpu_model(), " ", o.cluster_id(), " ",
                                 o.price_fen_per_gpu_hour(), " ", o.gpu_count(),
                                 "/", o.free_gpus()));
  }
  return lines;
}

TEST_F(ReportsTest, OffersAreTheUnrelatedClustersModelsByModelAndPrice) {
  pb::ListOffersRequest all;
  ASSERT_OK_AND_ASSIGN(pb::ListOffersResponse offers,
                       Offers(state_, "E-000003", all));
  EXPECT_THAT(OfferLines(offers), ElementsAre("910B hz-a 1200 16/16",
                                              HasSubstr("H100 sz-b 1800 8/"),
                                              HasSubstr("H100 hz-a 2000 8/")));
  EXPECT_EQ(offers.offers(0).provider_name(), "杭州算力科技有限公司");
  EXPECT_EQ(offers.offers(0).region(), "cn-hangzhou");
  EXPECT_EQ(offers.offers(0).hardware_class(), pb::HARDWARE_CLASS_DOMESTIC);
  // E-000002 is related to PR-000002: sz-b is not on offer to it.
  ASSERT_OK_AND_ASSIGN(offers, Offers(state_, "E-000002", all));
  EXPECT_THAT(OfferLines(offers),
              ElementsAre(HasSubstr("910B hz-a"), HasSubstr("H100 hz-a")));
  // Filters: a model in any letter case, a class.
  pb::ListOffersRequest filtered;
  filtered.set_gpu_model("h100");
  ASSERT_OK_AND_ASSIGN(offers, Offers(state_, "E-000003", filtered));
  EXPECT_THAT(OfferLines(offers),
              ElementsAre(HasSubstr("H100 sz-b"), HasSubstr("H100 hz-a")));
  filtered.Clear();
  filtered.set_hardware_class(pb::HARDWARE_CLASS_DOMESTIC);
  ASSERT_OK_AND_ASSIGN(offers, Offers(state_, "E-000003", filtered));
  EXPECT_THAT(OfferLines(offers), ElementsAre(HasSubstr("910B hz-a")));
  // GPUs an allocation takes are no longer free.
  ASSERT_THAT(driver_.Issue("P-000001", "E-000003", 1'000'000).status(),
              IsOk());
  ASSERT_THAT(driver_.Allocate("E-000003", "910B", 4, 3600).status(), IsOk());
  ASSERT_OK_AND_ASSIGN(offers, Offers(state_, "E-000003", filtered));
  EXPECT_THAT(OfferLines(offers), ElementsAre("910B hz-a 1200 16/12"));
  // Bad filters are refused.
  filtered.set_gpu_model(std::string(65, 'x'));
  EXPECT_THAT(
      Offers(state_, "E-000003", filtered),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("gpu_model")));
  filtered.Clear();
  filtered.set_hardware_class(static_cast<pb::HardwareClass>(99));
  EXPECT_THAT(Offers(state_, "E-000003", filtered),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("hardware_class: unknown value 99")));
}

TEST(JournalPageTest, FiltersByVoucherAndPagesOnTheLastEntryScanned) {
  std::vector<pb::JournalEntry> entries;
  for (int i = 1; i <= 10; ++i) {
    pb::JournalEntry e;
    e.set_sequence(i);
    e.set_voucher_id(i % 2 == 0 ? "V-000002" : "V-000001");
    entries.push_back(e);
  }
  MemoryJournal log(entries);
  pb::ListJournalRequest request;
  request.set_voucher_id("V-000002");
  request.mutable_page()->set_page_size(3);
  ASSERT_OK_AND_ASSIGN(const pb::ListJournalResponse first,
                       JournalPage(log, request));
  std::vector<int64_t> sequences;
  for (const pb::JournalEntry& e : first.entries()) {
    sequences.push_back(e.sequence());
  }
  EXPECT_THAT(sequences, ElementsAre(2, 4, 6));
  EXPECT_EQ(first.next_page_token(), "6");
  request.mutable_page()->set_page_token(first.next_page_token());
  ASSERT_OK_AND_ASSIGN(const pb::ListJournalResponse second,
                       JournalPage(log, request));
  ASSERT_EQ(second.entries_size(), 2);
  EXPECT_TRUE(second.next_page_token().empty());
  request.set_from_sequence(-1);
  EXPECT_THAT(
      JournalPage(log, request),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("from_sequence")));
}

}  // namespace
}  // namespace computevoucher::reports
