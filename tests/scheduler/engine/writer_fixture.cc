#include "tests/scheduler/engine/writer_fixture.h"

namespace computevoucher::engine {

using ::computevoucher::testing::AdminPrincipal;
using ::computevoucher::testing::AgentPrincipal;
using ::computevoucher::testing::EnterprisePrincipal;
using ::computevoucher::testing::NewCommand;

std::string WithCheckCharacter(const std::string& first17) {
  static constexpr char kAlphabet[] = "0123456789ABCDEFGHJKLMNPQRTUWXY";
  int sum = 0;
  int weight = 1;  // 3^i mod 31
  for (int i = 0; i < 17; ++i) {
    const int value =
        static_cast<int>(std::strchr(kAlphabet, first17[i]) - kAlphabet);
    sum += value * weight;
    weight = weight * 3 % 31;
  }
  return first17 + kAlphabet[(31 - sum % 31) % 31];
}

// A valid credit code, distinct for each n (0 <= n < 10^9), different from
// the world's.
std::string CreditCode(int n) {
  return WithCheckCharacter(absl::StrFormat("91110108%09d", n));
}

pb::Command IssueCommand(const std::string& request_id,
                         const std::string& enterprise_id,
                         int64_t face_value_fen) {
  pb::Command c = NewCommand(AdminPrincipal(), request_id);
  pb::IssueVoucherRequest* r = c.mutable_issue_voucher();
  r->set_program_id("P-000001");
  r->set_enterprise_id(enterprise_id);
  r->set_face_value_fen(face_value_fen);
  return c;
}

pb::Command ProviderCommand(const std::string& request_id,
                            const std::string& name, const std::string& code) {
  pb::Command c = NewCommand(AdminPrincipal(), request_id);
  c.mutable_register_provider()->set_name(name);
  c.mutable_register_provider()->set_credit_code(code);
  return c;
}

pb::Command AllocateCommand(const std::string& request_id,
                            const std::string& enterprise_id,
                            const std::string& voucher_id) {
  pb::Command c = NewCommand(EnterprisePrincipal(enterprise_id), request_id);
  pb::AllocateRequest* r = c.mutable_allocate();
  r->mutable_resources()->set_gpu_model("H100");
  r->mutable_resources()->set_gpu_count(1);
  r->mutable_resources()->set_max_duration_s(3600);
  r->mutable_resources()->set_voucher_id(voucher_id);
  return c;
}

pb::Command UsageCommand(const std::string& request_id,
                         const pb::Allocation& allocation, int64_t sequence,
                         absl::Time start, absl::Time end, int64_t gpu_ms) {
  pb::Command c =
      NewCommand(AgentPrincipal(allocation.cluster_id()), request_id);
  pb::UsageRecord* u = c.mutable_report_usage()->add_records();
  u->set_allocation_id(allocation.allocation_id());
  u->set_sequence(sequence);
  *u->mutable_start() = ToProto(start);
  *u->mutable_end() = ToProto(end);
  u->set_gpu_ms(gpu_ms);
  return c;
}

pb::Command ClusterStateCommand(const std::string& request_id,
                                const std::string& cluster_id,
                                pb::ClusterState state) {
  pb::Command c = NewCommand(AdminPrincipal(), request_id);
  c.mutable_set_cluster_state()->set_cluster_id(cluster_id);
  c.mutable_set_cluster_state()->set_state(state);
  return c;
}

// The state's digest, in hex for readable failures.
std::string Digest(const Writer& writer) {
  return absl::BytesToHexString(
      writer.Read([](const core::StateMachine& s) { return s.Digest(); }));
}

std::string LedgerHead(const Writer& writer) {
  return writer.Read(
      [](const core::StateMachine& s) { return s.ledger().last_hash(); });
}

std::vector<std::string> VoucherIds(const Writer& writer) {
  return writer.Read(
      [](const core::StateMachine& s) { return s.VoucherIds(); });
}

}  // namespace computevoucher::engine
