#include "common/charged_usage.h"

#include <string>
#include <vector>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "google/protobuf/timestamp.pb.h"
#include "gtest/gtest.h"

namespace computevoucher {
namespace {

namespace pb = ::computevoucher::v1;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

pb::UsageRecord Record() {
  pb::UsageRecord r;
  r.set_allocation_id("AL-00000001");
  r.set_sequence(3);
  r.mutable_start()->set_seconds(1'700'000'000);
  r.mutable_start()->set_nanos(5);
  r.mutable_end()->set_seconds(1'700'000'060);
  r.mutable_end()->set_nanos(7);
  r.set_gpu_ms(60'000);
  r.set_mean_utilization_bp(9'000);
  r.set_energy_mj(12);
  r.set_evidence("sacct job 41");
  return r;
}

// Copies of `base`, each with one field of `fields` (or, for a
// timestamp, its seconds or its nanoseconds) changed, named.
template <typename M>
std::vector<std::pair<std::string, M>> EachFieldChanged(
    const M& base, const std::vector<const FieldDescriptor*>& fields) {
  std::vector<std::pair<std::string, M>> out;
  const google::protobuf::Reflection& r = *M::GetReflection();
  for (const FieldDescriptor* f : fields) {
    auto add = [&](const std::string& name) -> M& {
      return out.emplace_back(name, base).second;
    };
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        r.SetString(&add(f->name()), f, r.GetString(base, f) + "x");
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        r.SetInt64(&add(f->name()), f, r.GetInt64(base, f) + 1);
        break;
      case FieldDescriptor::CPPTYPE_INT32:
        r.SetInt32(&add(f->name()), f, r.GetInt32(base, f) + 1);
        break;
      case FieldDescriptor::CPPTYPE_ENUM:
        r.SetEnumValue(&add(f->name()), f, r.GetEnumValue(base, f) + 1);
        break;
      case FieldDescriptor::CPPTYPE_MESSAGE:
        if (f->message_type() == google::protobuf::Timestamp::descriptor()) {
          auto* seconds = static_cast<google::protobuf::Timestamp*>(
              r.MutableMessage(&add(f->name() + ".seconds"), f));
          seconds->set_seconds(seconds->seconds() + 1);
          auto* nanos = static_cast<google::protobuf::Timestamp*>(
              r.MutableMessage(&add(f->name() + ".nanos"), f));
          nanos->set_nanos(nanos->nanos() + 1);
          break;
        }
        [[fallthrough]];
      default:
        ADD_FAILURE() << f->name() << ": a type this test does not change yet";
    }
  }
  return out;
}

std::vector<const FieldDescriptor*> FieldsOf(
    const google::protobuf::Descriptor& d) {
  std::vector<const FieldDescriptor*> out;
  for (int i = 0; i < d.field_count(); ++i) out.push_back(d.field(i));
  return out;
}

// A store finds an accepted record in its report by SameRecord: a field it
// missed would let a refused repeat stand in for the accepted record.
TEST(SameRecord, SeesEveryField) {
  const pb::UsageRecord base = Record();
  EXPECT_TRUE(SameRecord(base, base));
  const auto changed =
      EachFieldChanged(base, FieldsOf(*pb::UsageRecord::descriptor()));
  ASSERT_GE(changed.size(), 8u);
  for (const auto& [name, c] : changed) {
    EXPECT_FALSE(SameRecord(c, base)) << name;
  }
}

// Replay checks the stored records with SameCharge: each field a store keeps
// counts, each of the record's included; who used it (filled in by reports)
// does not.
TEST(SameCharge, SeesEveryStoredField) {
  pb::ChargedUsage base;
  *base.mutable_record() = Record();
  base.set_cost_fen(900);
  base.set_subsidy_fen(450);
  base.set_unsubsidised_gpu_ms(10);
  base.mutable_accepted_at()->set_seconds(1'700'000'070);
  EXPECT_TRUE(SameCharge(base, base, base.record()));
  const google::protobuf::Descriptor& d = *pb::ChargedUsage::descriptor();
  std::vector<const FieldDescriptor*> stored, filled_in;
  for (const FieldDescriptor* f : FieldsOf(d)) {
    if (f->number() == pb::ChargedUsage::kRecordFieldNumber) continue;
    (f->number() <= pb::ChargedUsage::kAcceptedAtFieldNumber ? stored
                                                             : filled_in)
        .push_back(f);
  }
  ASSERT_EQ(stored.size(), 4u);
  for (const auto& [name, c] : EachFieldChanged(base, stored)) {
    EXPECT_FALSE(SameCharge(c, base, base.record())) << name;
  }
  for (const auto& [name, r] : EachFieldChanged(
           base.record(), FieldsOf(*pb::UsageRecord::descriptor()))) {
    pb::ChargedUsage c = base;
    *c.mutable_record() = r;
    EXPECT_FALSE(SameCharge(c, base, base.record())) << "record." << name;
  }
  for (const auto& [name, c] : EachFieldChanged(base, filled_in)) {
    EXPECT_TRUE(SameCharge(c, base, base.record())) << name;
  }
  // A stored record read without its record (UsageQuery::records) is
  // compared with the one its command carries.
  pb::ChargedUsage bare = base;
  bare.clear_record();
  EXPECT_TRUE(SameCharge(base, bare, base.record()));
  pb::UsageRecord other = base.record();
  other.set_gpu_ms(other.gpu_ms() + 1);
  EXPECT_FALSE(SameCharge(base, bare, other));
}

}  // namespace
}  // namespace computevoucher
