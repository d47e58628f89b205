// Retired allocations and vouchers in every Store implementation (SQLite
// and PostgreSQL): written with the batch of the command that retired them,
// read back by id, by their columns, by when they were retired, in pages.
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/time_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/store/store.h"
#include "tests/scheduler/store/store_backend.h"
#include "tests/scheduler/store/store_fixture.h"
#include "tests/testing/status_matchers.h"

namespace computevoucher::store {
namespace {

using ::computevoucher::testing::IsOk;
using ::computevoucher::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

using RetiredStoreTest = StoreTest;

// A retired allocation's final view, as core::Placement::RetireDue gives it.
pb::Allocation Retired(const std::string& id, const std::string& enterprise,
                       const std::string& provider, const std::string& cluster,
                       const std::string& voucher) {
  pb::Allocation a;
  // Retired on the hour of its number, with nanoseconds.
  *a.mutable_retired_at() =
      ToProto(absl::FromUnixSeconds(1'780'000'000) +
              absl::Hours(std::stoi(id.substr(3))) + absl::Nanoseconds(7));
  a.set_allocation_id(id);
  a.set_enterprise_id(enterprise);
  a.set_provider_id(provider);
  a.set_cluster_id(cluster);
  a.set_voucher_id(voucher);
  a.set_state(pb::ALLOCATION_STATE_ENDED);
  a.set_charged_fen(12'345);
  a.add_workload_command("python3");
  return a;
}

std::vector<std::string> Ids(const std::vector<pb::Allocation>& allocations) {
  std::vector<std::string> ids;
  for (const pb::Allocation& a : allocations) ids.push_back(a.allocation_id());
  return ids;
}

TEST_P(RetiredStoreTest, RetiredAllocationsAreStoredWithTheirBatchAndListed) {
  const std::vector<Batch> batches = PerCommandBatches(history_);
  ASSERT_GE(batches.size(), 3u);
  const pb::Allocation a1 = Retired("AL-00000001", "E-1", "PV-1", "c1", "V-1");
  const pb::Allocation a2 = Retired("AL-00000002", "E-1", "", "", "V-2");
  const pb::Allocation a3 = Retired("AL-00000003", "E-2", "PV-1", "c2", "V-3");
  std::unique_ptr<Store> store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  Batch first = batches[0];
  first.retired = {a3, a1};
  ASSERT_THAT(store->Append(first), IsOk());
  Batch second = batches[1];
  second.retired = {a2};
  ASSERT_THAT(store->Append(second), IsOk());

  auto read = [&](RetiredQuery q) { return store->ReadRetired(q); };
  RetiredQuery by_id;
  by_id.allocation_id = "AL-00000002";
  ASSERT_OK_AND_ASSIGN(const std::vector<pb::Allocation> one, read(by_id));
  ExpectSameMessages(one, std::vector<pb::Allocation>{a2});
  by_id.allocation_id = "AL-00000009";
  EXPECT_THAT(read(by_id), IsOkAndHolds(IsEmpty()));

  RetiredQuery all;
  EXPECT_THAT(read(all),
              IsOkAndHolds(::testing::ResultOf(
                  Ids, ::testing::ElementsAre("AL-00000001", "AL-00000002",
                                              "AL-00000003"))));
  RetiredQuery of_enterprise;
  of_enterprise.enterprise_id = "E-1";
  EXPECT_THAT(read(of_enterprise),
              IsOkAndHolds(::testing::ResultOf(
                  Ids, ::testing::ElementsAre("AL-00000001", "AL-00000002"))));
  RetiredQuery of_provider;
  of_provider.provider_id = "PV-1";
  of_provider.after_id = "AL-00000001";
  EXPECT_THAT(read(of_provider),
              IsOkAndHolds(::testing::ResultOf(
                  Ids, ::testing::ElementsAre("AL-00000003"))));
  RetiredQuery page;
  page.cluster_id = "c1";
  page.voucher_id = "V-1";
  page.limit = 1;
  EXPECT_THAT(read(page), IsOkAndHolds(::testing::ResultOf(
                              Ids, ::testing::ElementsAre("AL-00000001"))));
  page.limit = 0;
  EXPECT_THAT(read(page),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("limit")));
  // By when they were retired, both bounds included.
  RetiredQuery period;
  period.retired_from = absl::FromUnixSeconds(1'780'000'000) + absl::Hours(2) +
                        absl::Nanoseconds(7);
  EXPECT_THAT(read(period),
              IsOkAndHolds(::testing::ResultOf(
                  Ids, ::testing::ElementsAre("AL-00000002", "AL-00000003"))));
  period.retired_until = period.retired_from;
  EXPECT_THAT(read(period), IsOkAndHolds(::testing::ResultOf(
                                Ids, ::testing::ElementsAre("AL-00000002"))));

  // A batch retiring one already retired fails whole: nothing of it stays.
  Batch third = batches[2];
  third.retired = {Retired("AL-00000004", "E-3", "", "", "V-4"), a1};
  EXPECT_FALSE(store->Append(third).ok());
  ASSERT_OK_AND_ASSIGN(const Head head, store->ReadHead());
  EXPECT_EQ(head.command_sequence, 2);
  by_id.allocation_id = "AL-00000004";
  EXPECT_THAT(read(by_id), IsOkAndHolds(IsEmpty()));
}

// A retired voucher's final view, as core::VoucherBook::RetireDue gives it.
pb::Voucher RetiredVoucher(const std::string& id, const std::string& program,
                           const std::string& enterprise,
                           pb::VoucherState state, int hour) {
  pb::Voucher v;
  *v.mutable_retired_at() = ToProto(absl::FromUnixSeconds(1'780'000'000) +
                                    absl::Hours(hour) + absl::Nanoseconds(7));
  v.set_voucher_id(id);
  v.set_program_id(program);
  v.set_enterprise_id(enterprise);
  v.set_state(state);
  v.set_face_value_fen(10'000);
  v.set_charged_fen(2'500);
  v.set_returned_fen(7'500);
  return v;
}

std::vector<std::string> VoucherIds(const std::vector<pb::Voucher>& vouchers) {
  std::vector<std::string> ids;
  for (const pb::Voucher& v : vouchers) ids.push_back(v.voucher_id());
  return ids;
}

TEST_P(RetiredStoreTest, RetiredVouchersAreStoredWithTheirBatchAndListed) {
  const std::vector<Batch> batches = PerCommandBatches(history_);
  ASSERT_GE(batches.size(), 3u);
  const pb::Voucher v1 = RetiredVoucher("CV-2025-000001", "P-1", "E-1",
                                        pb::VOUCHER_STATE_EXPIRED, 1);
  const pb::Voucher v2 = RetiredVoucher("CV-2025-000002", "P-1", "E-2",
                                        pb::VOUCHER_STATE_REVOKED, 2);
  const pb::Voucher v3 = RetiredVoucher("CV-2025-000003", "P-2", "E-1",
                                        pb::VOUCHER_STATE_EXHAUSTED, 3);
  std::unique_ptr<Store> store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  Batch first = batches[0];
  first.retired_vouchers = {v3, v1};
  ASSERT_THAT(store->Append(first), IsOk());
  Batch second = batches[1];
  second.retired_vouchers = {v2};
  ASSERT_THAT(store->Append(second), IsOk());

  auto ids = [&](RetiredVoucherQuery q) {
    return store->ReadRetiredVouchers(q);
  };
  RetiredVoucherQuery by_id;
  by_id.voucher_id = "CV-2025-000002";
  ASSERT_OK_AND_ASSIGN(const std::vector<pb::Voucher> one, ids(by_id));
  ExpectSameMessages(one, std::vector<pb::Voucher>{v2});
  RetiredVoucherQuery all;
  EXPECT_THAT(
      ids(all),
      IsOkAndHolds(::testing::ResultOf(
          VoucherIds, ::testing::ElementsAre("CV-2025-000001", "CV-2025-000002",
                                             "CV-2025-000003"))));
  RetiredVoucherQuery of_enterprise;
  of_enterprise.enterprise_id = "E-1";
  of_enterprise.after_id = "CV-2025-000001";
  EXPECT_THAT(ids(of_enterprise),
              IsOkAndHolds(::testing::ResultOf(
                  VoucherIds, ::testing::ElementsAre("CV-2025-000003"))));
  RetiredVoucherQuery of_program;
  of_program.program_id = "P-1";
  of_program.state = "VOUCHER_STATE_REVOKED";
  EXPECT_THAT(ids(of_program),
              IsOkAndHolds(::testing::ResultOf(
                  VoucherIds, ::testing::ElementsAre("CV-2025-000002"))));
  RetiredVoucherQuery period;
  period.retired_from = absl::FromUnixSeconds(1'780'000'000) + absl::Hours(2) +
                        absl::Nanoseconds(7);
  period.retired_until = period.retired_from;
  period.limit = 1;
  EXPECT_THAT(ids(period),
              IsOkAndHolds(::testing::ResultOf(
                  VoucherIds, ::testing::ElementsAre("CV-2025-000002"))));
  period.limit = 10'001;
  EXPECT_THAT(ids(period),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("limit")));

  // A batch retiring one already retired fails whole: nothing of it stays.
  Batch third = batches[2];
  third.retired_vouchers = {RetiredVoucher("CV-2025-000004", "P-1", "E-3",
                                           pb::VOUCHER_STATE_EXPIRED, 4),
                            v1};
  EXPECT_FALSE(store->Append(third).ok());
  ASSERT_OK_AND_ASSIGN(const Head head, store->ReadHead());
  EXPECT_EQ(head.command_sequence, 2);
  by_id.voucher_id = "CV-2025-000004";
  EXPECT_THAT(ids(by_id), IsOkAndHolds(IsEmpty()));
}

// An audit event of command `sequence`, applied `minutes` after a fixed
// instant.
pb::AuditEvent Event(int64_t sequence, const std::string& token,
                     const std::string& object, int minutes) {
  pb::AuditEvent e;
  e.set_sequence(sequence);
  *e.mutable_time() =
      ToProto(absl::FromUnixSeconds(1'780'000'000) + absl::Minutes(minutes));
  e.mutable_principal()->set_role(pb::ROLE_ADMIN);
  e.mutable_principal()->set_token_id(token);
  e.mutable_principal()->set_peer("ipv4:127.0.0.1:5000");
  e.set_method("suspend_voucher");
  e.set_object_id(object);
  return e;
}

std::vector<int64_t> Sequences(const std::vector<pb::AuditEvent>& events) {
  std::vector<int64_t> out;
  for (const pb::AuditEvent& e : events) out.push_back(e.sequence());
  return out;
}

TEST_P(RetiredStoreTest, AuditEventsAreStoredWithTheirBatchAndListed) {
  const std::vector<Batch> batches = PerCommandBatches(history_);
  ASSERT_GE(batches.size(), 3u);
  std::unique_ptr<Store> store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  // Sequence 9 and 10 sort after 2 as numbers, not as text.
  Batch first = batches[0];
  first.audit = {Event(2, "TK-1", "CV-1", 0), Event(9, "TK-2", "CV-2", 1)};
  ASSERT_THAT(store->Append(first), IsOk());
  Batch second = batches[1];
  second.audit = {Event(10, "TK-1", "CV-2", 2)};
  ASSERT_THAT(store->Append(second), IsOk());

  auto read = [&](AuditQuery q) { return store->ReadAudit(q); };
  ASSERT_OK_AND_ASSIGN(const std::vector<pb::AuditEvent> all, read({}));
  ExpectSameMessages(all, std::vector<pb::AuditEvent>{
                              first.audit[0], first.audit[1], second.audit[0]});
  AuditQuery by_token;
  by_token.token_id = "TK-1";
  EXPECT_THAT(read(by_token), IsOkAndHolds(::testing::ResultOf(
                                  Sequences, ::testing::ElementsAre(2, 10))));
  AuditQuery by_object;
  by_object.object_id = "CV-2";
  by_object.after = 9;
  EXPECT_THAT(read(by_object), IsOkAndHolds(::testing::ResultOf(
                                   Sequences, ::testing::ElementsAre(10))));
  // A period is [from, until).
  AuditQuery period;
  period.from = absl::FromUnixSeconds(1'780'000'000) + absl::Minutes(1);
  period.until = period.from + absl::Minutes(1);
  EXPECT_THAT(read(period), IsOkAndHolds(::testing::ResultOf(
                                Sequences, ::testing::ElementsAre(9))));
  AuditQuery page;
  page.limit = 2;
  EXPECT_THAT(read(page), IsOkAndHolds(::testing::ResultOf(
                              Sequences, ::testing::ElementsAre(2, 9))));

  // A batch repeating an event fails whole.
  Batch third = batches[2];
  third.audit = {Event(11, "TK-1", "CV-3", 3), Event(10, "TK-1", "CV-2", 2)};
  EXPECT_FALSE(store->Append(third).ok());
  AuditQuery of_third;
  of_third.object_id = "CV-3";
  EXPECT_THAT(read(of_third), IsOkAndHolds(IsEmpty()));
}

INSTANTIATE_TEST_SUITE_P(Stores, RetiredStoreTest,
                         ::testing::ValuesIn(StoreBackendNames()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace computevoucher::store
