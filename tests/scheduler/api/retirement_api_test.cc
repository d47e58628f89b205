// Retired allocations through the API (issue 15, item 2): once an ended
// allocation leaves the scheduler's memory, every reader still answers it
// from the store, as before and after a restart, and late usage for it is
// refused.
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/time_util.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "tests/scheduler/api/history_fixture.h"

namespace computevoucher::testing {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

using RetirementApiTest = HistoryApiTest;

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

}  // namespace
}  // namespace computevoucher::testing
