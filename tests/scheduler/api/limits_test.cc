// Every string and every repeated field of every request of every service
// has a limit, checked before anything is stored, logged or echoed (issue
// 13, item 4). Walked by reflection over the services' descriptors, so that
// a field or method added later is covered without touching this test: for
// each method, a request the validation accepts up to the field under test,
// then that field alone made oversized (a 64 KiB string; 100,000 elements).
// Each such request is refused as the client's error, by a message that
// names the field and stays short, and the store does not grow.
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/notification.h"
#include "computevoucher/v1/admin.grpc.pb.h"
#include "computevoucher/v1/agent.grpc.pb.h"
#include "computevoucher/v1/enterprise.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/text_format.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/byte_buffer.h"
#include "tests/scheduler/api/api_fixture.h"

namespace computevoucher::testing {
namespace {

using ::google::protobuf::Descriptor;
using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::Message;
using ::google::protobuf::MethodDescriptor;
using ::google::protobuf::Reflection;
using ::google::protobuf::ServiceDescriptor;

constexpr size_t kHugeString = 64 << 10;
constexpr int kHugeCount = 100'000;

// A request each method's validation accepts as far as the field under
// test (text format; the ids are the world's, and $V, $A, $APP and $T
// those of a voucher, allocation, application and token of E-000003).
// Methods without an entry start from an empty request. A data table.
const std::map<std::string, std::string>& Baselines() {
  static const auto* const kBaselines = new std::map<std::string, std::string>{
      {"AdminService.CreateProgram",
       R"(request_id: "r" name: "算力券" issuer: "杭州市经信局"
          budget_fen: 100000 valid_from { seconds: 1740758400 }
          valid_until { seconds: 1798732800 } domestic_ratio_bp: 3000
          other_ratio_bp: 2000 eligible_categories: "robotics")"},
      {"AdminService.GetProgram", R"(program_id: "P-000001")"},
      {"AdminService.RegisterEnterprise",
       R"(request_id: "r" name: "某机器人公司" credit_code: "91330100MA2AYFEJ4M"
          category: "robotics" district: "余杭区"
          related_provider_ids: "PR-000001")"},
      {"AdminService.SetRelatedProviders",
       R"(request_id: "r" enterprise_id: "E-000001"
          related_provider_ids: "PR-000001")"},
      {"AdminService.GetEnterprise", R"(enterprise_id: "E-000001")"},
      {"AdminService.RegisterProvider",
       R"(request_id: "r" name: "某算力公司" credit_code: "91330100MA2AYFEJ4M")"},
      {"AdminService.SetClusterState",
       R"(request_id: "r" cluster_id: "hz-a" state: CLUSTER_STATE_APPROVED)"},
      {"AdminService.ListApplications", R"(program_id: "P-000001")"},
      {"AdminService.ApproveApplication",
       R"(request_id: "r" application_id: "$APP" approved_fen: 100
          reason: "ok")"},
      {"AdminService.RejectApplication",
       R"(request_id: "r" application_id: "$APP" reason: "no")"},
      {"AdminService.IssueVoucher",
       R"(request_id: "r" program_id: "P-000001" enterprise_id: "E-000001"
          face_value_fen: 100)"},
      {"AdminService.BatchIssueVouchers",
       R"(request_id: "r" rows { request_id: "row" program_id: "P-000001"
          enterprise_id: "E-000001" face_value_fen: 100 })"},
      {"AdminService.SuspendVoucher",
       R"(request_id: "r" voucher_id: "$V" reason: "audit")"},
      {"AdminService.ResumeVoucher", R"(request_id: "r" voucher_id: "$V")"},
      {"AdminService.RevokeVoucher",
       R"(request_id: "r" voucher_id: "$V" reason: "fraud")"},
      {"AdminService.AdjustVoucher",
       R"(request_id: "r" voucher_id: "$V" delta_fen: 1 reason: "fix")"},
      {"AdminService.ListVouchers",
       R"(program_id: "P-000001" enterprise_id: "E-000001")"},
      {"AdminService.ListAllocations",
       R"(enterprise_id: "E-000001" cluster_id: "hz-a")"},
      {"AdminService.CreateToken",
       R"(request_id: "r" role: ROLE_ENTERPRISE enterprise_id: "E-000001"
          description: "ci")"},
      {"AdminService.RevokeToken", R"(request_id: "r" token_id: "$T")"},
      {"AdminService.GetSettlement",
       R"(provider_id: "PR-000001" period_start { seconds: 1740758400 }
          period_end { seconds: 1740844800 })"},
      {"AdminService.GetUsageReport",
       R"(period_start { seconds: 1740758400 } period_end { seconds: 1740844800 }
          group_by: REPORT_GROUP_ENTERPRISE program_id: "P-000001"
          enterprise_id: "E-000001" provider_id: "PR-000001")"},
      {"AdminService.GetCapUse",
       R"(program_id: "P-000001" enterprise_id: "E-000001")"},
      {"AdminService.ListExpiringVouchers",
       R"(within_days: 30 program_id: "P-000001" enterprise_id: "E-000001")"},
      {"AdminService.ListAudit", R"(token_id: "$T" object_id: "$V")"},
      {"AdminService.SettleProvider",
       R"(request_id: "r" provider_id: "PR-000001" amount_fen: 1
          reference: "bank")"},
      {"AdminService.ListJournal", R"(voucher_id: "$V" allocation_id: "$A")"},
      {"AgentService.Register",
       R"(request_id: "r" region: "hangzhou"
          inventory { model: "910B" hardware_class: HARDWARE_CLASS_DOMESTIC
                      gpu_count: 8 price_fen_per_gpu_hour: 1000 }
          agent_version: "1" meter: "simulated")"},
      {"AgentService.Heartbeat",
       R"(request_id: "r" allocations { allocation_id: "$A" running: true
          gpu_indices: 0 access: "ssh" end_detail: "d" }
          free_gpus { key: "910B" value: 1 } healthy: true)"},
      {"AgentService.ReportUsage",
       R"(request_id: "r" records { allocation_id: "$A" sequence: 1
          start { seconds: 1740758400 } end { seconds: 1740758410 }
          gpu_ms: 10000 evidence: "e" })"},
      {"EnterpriseService.Apply",
       R"(request_id: "r" program_id: "P-000001" requested_fen: 100
          purpose: "training")"},
      {"EnterpriseService.GetVoucher", R"(voucher_id: "$V")"},
      {"EnterpriseService.Quote",
       R"(resources { gpu_model: "910B" gpu_count: 1 max_duration_s: 3600
          voucher_id: "$V" })"},
      {"EnterpriseService.Allocate",
       R"(request_id: "r" resources { gpu_model: "910B" gpu_count: 1
          max_duration_s: 3600 voucher_id: "$V" } workload_command: "sleep")"},
      {"EnterpriseService.GetAllocation", R"(allocation_id: "$A")"},
      {"EnterpriseService.ListAllocations", R"(voucher_id: "$V")"},
      {"EnterpriseService.ReleaseAllocation",
       R"(request_id: "r" allocation_id: "$A")"},
      {"EnterpriseService.ExtendAllocation",
       R"(request_id: "r" allocation_id: "$A" extra_duration_s: 600)"},
      {"EnterpriseService.ListUsage",
       R"(allocation_id: "$A" period_start { seconds: 1740758400 }
          period_end { seconds: 1740844800 })"},
  };
  return *kBaselines;
}

// One field of a request to make oversized: the path of messages to reach
// it (each step a field, and for a repeated message its first element).
struct Target {
  std::vector<const FieldDescriptor*> path;
  std::string name;  // "rows[0].request_id"
};

void CollectTargets(const Descriptor& d, std::vector<const FieldDescriptor*> at,
                    const std::string& prefix, std::vector<Target>& out) {
  for (int i = 0; i < d.field_count(); ++i) {
    const FieldDescriptor* f = d.field(i);
    std::vector<const FieldDescriptor*> path = at;
    path.push_back(f);
    const std::string name = prefix + f->name();
    if (f->is_repeated()) out.push_back(Target{path, name});
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_STRING)
      out.push_back(Target{path, name});
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
        f->message_type()->file()->package() != "google.protobuf") {
      CollectTargets(*f->message_type(), path,
                     name + (f->is_repeated() ? "[0]." : "."), out);
    }
  }
}

// Makes the target field oversized in `request`: for the last step, a
// repeated field gets kHugeCount elements when `count` is set (copies of
// its first, or defaults), a string gets kHugeString bytes.
void Oversize(Message& request, const Target& target, bool count) {
  Message* m = &request;
  for (size_t i = 0; i + 1 < target.path.size(); ++i) {
    const FieldDescriptor* f = target.path[i];
    const Reflection* r = m->GetReflection();
    if (f->is_repeated()) {
      m = r->FieldSize(*m, f) > 0 ? r->MutableRepeatedMessage(m, f, 0)
                                  : r->AddMessage(m, f);
    } else {
      m = r->MutableMessage(m, f);
    }
  }
  const FieldDescriptor* f = target.path.back();
  const Reflection* r = m->GetReflection();
  const std::string huge(kHugeString, 'x');
  if (count) {
    for (int n = r->FieldSize(*m, f); n < kHugeCount; ++n) {
      switch (f->cpp_type()) {
        case FieldDescriptor::CPPTYPE_STRING:
          r->AddString(m, f, absl::StrCat("x", n));
          break;
        case FieldDescriptor::CPPTYPE_MESSAGE: {
          Message* added = r->AddMessage(m, f);
          if (n > 0) added->CopyFrom(r->GetRepeatedMessage(*m, f, 0));
          if (f->is_map()) {  // distinct keys
            const FieldDescriptor* key = added->GetDescriptor()->map_key();
            added->GetReflection()->SetString(added, key, absl::StrCat("x", n));
          }
          break;
        }
        case FieldDescriptor::CPPTYPE_INT32:
          r->AddInt32(m, f, n % 8);
          break;
        case FieldDescriptor::CPPTYPE_ENUM:
          r->AddEnumValue(m, f, n % 8);
          break;
        default:
          FAIL() << target.name << ": add a case for this element type";
      }
    }
  } else if (f->is_repeated()) {
    if (r->FieldSize(*m, f) == 0) {
      r->AddString(m, f, huge);
    } else {
      r->SetRepeatedString(m, f, 0, huge);
    }
  } else {
    r->SetString(m, f, huge);
  }
}

const ServiceDescriptor* Service(const std::string& name) {
  const ServiceDescriptor* s =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          "computevoucher.v1." + name);
  EXPECT_NE(s, nullptr) << name;
  return s;
}

class LimitsTest : public ApiTest {
 protected:
  void SetUp() override {
    ApiTest::SetUp();
    BuildWorld();
    ids_["$V"] = Issue("E-000003", 10'000'00).voucher_id();
    pb::AllocateRequest allocate;
    allocate.set_request_id(NextRequestId());
    allocate.mutable_resources()->set_gpu_model("910B");
    allocate.mutable_resources()->set_gpu_count(1);
    allocate.mutable_resources()->set_max_duration_s(3600);
    pb::Allocation allocation;
    grpc::Status s =
        enterprise_->Allocate(As(e3_token_).get(), allocate, &allocation);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ids_["$A"] = allocation.allocation_id();
    pb::ApplyRequest apply;
    apply.set_request_id(NextRequestId());
    apply.set_program_id("P-000001");
    apply.set_requested_fen(100'00);
    apply.set_purpose("limits");
    pb::Application application;
    s = enterprise_->Apply(As(e3_token_).get(), apply, &application);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ids_["$APP"] = application.application_id();
    pb::ListTokensRequest list;
    pb::ListTokensResponse tokens;
    s = admin_->ListTokens(As(admin_token_).get(), list, &tokens);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_GT(tokens.tokens_size(), 0);
    ids_["$T"] = tokens.tokens(tokens.tokens_size() - 1).token_id();
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
  }

  // Calls `method`; a call answered OK with row errors (a batch refused
  // as a whole, row by row) comes back as InvalidArgument with the first
  // row's message.
  grpc::Status Call(const MethodDescriptor& method, const std::string& token,
                    const Message& request,
                    google::protobuf::DynamicMessageFactory& factory) {
    grpc::GenericStub stub(channel_);
    std::unique_ptr<grpc::ClientContext> context = As(token);
    const std::string bytes = request.SerializeAsString();
    grpc::Slice slice(bytes);
    grpc::ByteBuffer in(&slice, 1);
    grpc::ByteBuffer out;
    grpc::Status status;
    absl::Notification done;
    stub.UnaryCall(context.get(),
                   absl::StrCat("/", method.service()->full_name(), "/",
                                method.name()),
                   grpc::StubOptions(), &in, &out, [&](grpc::Status s) {
                     status = std::move(s);
                     done.Notify();
                   });
    done.WaitForNotification();
    if (!status.ok()) return status;
    std::unique_ptr<Message> response(
        factory.GetPrototype(method.output_type())->New());
    std::vector<grpc::Slice> slices;
    EXPECT_TRUE(out.Dump(&slices).ok());
    std::string bytes_out;
    for (const grpc::Slice& sl : slices) {
      bytes_out.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
    }
    EXPECT_TRUE(response->ParseFromString(bytes_out)) << method.name();
    const FieldDescriptor* errors =
        method.output_type()->FindFieldByName("errors");
    if (errors == nullptr ||
        response->GetReflection()->FieldSize(*response, errors) == 0) {
      return status;
    }
    const Message& first =
        response->GetReflection()->GetRepeatedMessage(*response, errors, 0);
    return grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        first.GetReflection()->GetString(
            first, first.GetDescriptor()->FindFieldByName("message")));
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::map<std::string, std::string> ids_;
};

TEST_F(LimitsTest, EveryStringAndListOfEveryRequestIsBounded) {
  const int64_t before = StoredCommands();
  ASSERT_GT(before, 0);
  const std::vector<std::pair<const ServiceDescriptor*, std::string>>
      services = {
          {Service("AdminService"), admin_token_},
          {Service("EnterpriseService"), e3_token_},
          {Service("AgentService"), hz_token_},
      };
  google::protobuf::DynamicMessageFactory factory;
  int checked = 0;
  for (const auto& [service, token] : services) {
    for (int i = 0; i < service->method_count(); ++i) {
      const MethodDescriptor& method = *service->method(i);
      const std::string key =
          absl::StrCat(service->name(), ".", method.name());
      std::unique_ptr<Message> baseline(
          factory.GetPrototype(method.input_type())->New());
      if (auto it = Baselines().find(key); it != Baselines().end()) {
        ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
            absl::StrReplaceAll(it->second, ids_), baseline.get()))
            << key;
      }
      std::vector<Target> targets;
      CollectTargets(*method.input_type(), {}, "", targets);
      for (const Target& target : targets) {
        // A repeated string is tried both ways: many, and one huge.
        for (const bool many : {true, false}) {
          if (many && !target.path.back()->is_repeated()) continue;
          if (!many && target.path.back()->cpp_type() !=
                           FieldDescriptor::CPPTYPE_STRING)
            continue;
          std::unique_ptr<Message> request(baseline->New());
          request->CopyFrom(*baseline);
          ASSERT_NO_FATAL_FAILURE(Oversize(*request, target, many));
          const std::string what =
              absl::StrCat(key, " ", target.name, many ? " (many)" : "");
          const grpc::Status s = Call(method, token, *request, factory);
          ++checked;
          EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
              << what << ": " << s.error_message().substr(0, 200);
          // Named (by its own name; a map entry by its map's).
          const std::string leaf =
              target.path.back()->containing_type()->options().map_entry()
                  ? target.path[target.path.size() - 2]->name()
                  : target.path.back()->name();
          EXPECT_THAT(s.error_message(), ::testing::HasSubstr(leaf))
              << what << ": " << s.error_message().substr(0, 200);
          EXPECT_LT(s.error_message().size(), 300u) << what;
        }
      }
    }
  }
  RecordProperty("requests_checked", checked);
  EXPECT_GT(checked, 100);
  EXPECT_EQ(StoredCommands(), before) << "an oversized request was stored";
}

}  // namespace
}  // namespace computevoucher::testing
