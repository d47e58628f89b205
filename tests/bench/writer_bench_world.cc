#include "tests/bench/writer_bench_world.h"

#include <atomic>
#include <map>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "computevoucher/v1/agent.pb.h"
#include "scheduler/core/state_machine.h"
#include "tests/testing/world.h"

namespace computevoucher::bench::writer_bench {
namespace {

using ::computevoucher::testing::AdminPrincipal;
using ::computevoucher::testing::AgentPrincipal;
using ::computevoucher::testing::EnterprisePrincipal;
using ::computevoucher::testing::NewCommand;

// Submits `commands` from `threads` threads at once, so that they share
// group commits; their relative order is not kept. Outcomes in input order.
std::vector<absl::StatusOr<core::Outcome>> SubmitConcurrently(
    engine::Writer& writer, std::vector<pb::Command> commands, int threads) {
  std::vector<absl::StatusOr<core::Outcome>> outcomes(
      commands.size(), absl::UnknownError("not submitted"));
  std::atomic<size_t> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (size_t i = next++; i < commands.size(); i = next++) {
        outcomes[i] = writer.Submit(std::move(commands[i]));
      }
    });
  }
  for (std::thread& t : pool) t.join();
  return outcomes;
}

absl::Status FirstError(
    const std::vector<absl::StatusOr<core::Outcome>>& outcomes,
    absl::string_view what) {
  for (const auto& o : outcomes) {
    if (!o.ok()) {
      return absl::Status(o.status().code(),
                          absl::StrCat(what, ": ", o.status().message()));
    }
  }
  return absl::OkStatus();
}

std::string ClusterId(int c) { return absl::StrFormat("bench-%02d", c); }

// The standard test world, restamped by the writer.
absl::Status SubmitWorld(engine::Writer& writer) {
  core::StateMachine scratch;
  testing::Driver driver(scratch);
  RETURN_IF_ERROR(driver.BuildWorld());
  for (pb::Command c : driver.log()) {
    c.clear_sequence();
    c.clear_time();
    RETURN_IF_ERROR(writer.Submit(std::move(c)).status());
  }
  return absl::OkStatus();
}

// A program with budget to spare and no cap per enterprise, and a voucher
// for kEnterprise that covers the holds of every allocation.
absl::Status FundEnterprise(engine::Writer& writer,
                            int allocations_per_cluster) {
  const absl::Time now = absl::Now();
  std::string program_id;
  {
    pb::Command c = NewCommand(AdminPrincipal(), "bench-program");
    pb::CreateProgramRequest* r = c.mutable_create_program();
    r->set_name("writer bench");
    r->set_issuer("writer bench");
    r->set_budget_fen(1'000'000'000'000'000);
    *r->mutable_valid_from() = ToProto(now - absl::Hours(24));
    *r->mutable_valid_until() = ToProto(now + absl::Hours(24 * 365));
    r->set_domestic_ratio_bp(kRatioBp);
    r->set_other_ratio_bp(kRatioBp);
    r->set_sme_ratio_bp(kRatioBp);
    r->set_enterprise_cap_fen(0);
    ASSIGN_OR_RETURN(const core::Outcome o, writer.Submit(std::move(c)));
    program_id = static_cast<const pb::Program&>(*o.response).program_id();
  }
  {
    const int64_t holds = int64_t{kClusters} * allocations_per_cluster *
                          (kPriceFenPerGpuHour * kAllocationSeconds / 3600) *
                          kRatioBp / 10'000;
    pb::Command c = NewCommand(AdminPrincipal(), "bench-voucher");
    pb::IssueVoucherRequest* r = c.mutable_issue_voucher();
    r->set_program_id(program_id);
    r->set_enterprise_id(kEnterprise);
    r->set_face_value_fen(holds + 1'000'000'00);
    RETURN_IF_ERROR(writer.Submit(std::move(c)).status());
  }
  return absl::OkStatus();
}

// The commands that make cluster `i` an agent cluster: a token, its
// registration and its approval.
pb::Command TokenCommand(int i) {
  const std::string cluster = ClusterId(i);
  pb::Command c =
      NewCommand(AdminPrincipal(), absl::StrCat("bench-token-", cluster));
  pb::CreateTokenRequest* r = c.mutable_create_token()->mutable_request();
  r->set_role(pb::ROLE_AGENT);
  r->set_cluster_id(cluster);
  r->set_provider_id(kProvider);
  c.mutable_create_token()->set_secret_sha256(absl::StrFormat("%032d", i));
  return c;
}

pb::Command RegisterCommand(int i, int allocations_per_cluster) {
  const std::string cluster = ClusterId(i);
  pb::Command c = NewCommand(AgentPrincipal(cluster),
                             absl::StrCat("bench-register-", cluster));
  pb::RegisterRequest* r = c.mutable_register_cluster();
  r->set_region("cn-hangzhou");
  r->set_meter("simulated");
  pb::GpuModel* m = r->add_inventory();
  m->set_model(kModel);
  m->set_hardware_class(pb::HARDWARE_CLASS_OTHER);
  // Exactly what the slot needs: placement prefers the tightest fit,
  // so the clusters fill one after the other.
  m->set_gpu_count(allocations_per_cluster);
  m->set_price_fen_per_gpu_hour(kPriceFenPerGpuHour);
  return c;
}

pb::Command ApproveCommand(int i) {
  const std::string cluster = ClusterId(i);
  pb::Command c =
      NewCommand(AdminPrincipal(), absl::StrCat("bench-approve-", cluster));
  c.mutable_set_cluster_state()->set_cluster_id(cluster);
  c.mutable_set_cluster_state()->set_state(pb::CLUSTER_STATE_APPROVED);
  return c;
}

// One agent cluster per slot: token, registration, approval.
absl::Status AddClusters(engine::Writer& writer, int allocations_per_cluster) {
  std::vector<pb::Command> tokens, registrations, approvals;
  for (int i = 0; i < kClusters; ++i) {
    tokens.push_back(TokenCommand(i));
    registrations.push_back(RegisterCommand(i, allocations_per_cluster));
    approvals.push_back(ApproveCommand(i));
  }
  RETURN_IF_ERROR(FirstError(
      SubmitConcurrently(writer, std::move(tokens), kClusters), "token"));
  RETURN_IF_ERROR(FirstError(
      SubmitConcurrently(writer, std::move(registrations), kClusters),
      "register"));
  RETURN_IF_ERROR(FirstError(
      SubmitConcurrently(writer, std::move(approvals), kClusters), "approve"));
  return absl::OkStatus();
}

// The allocations, one GPU each, grouped by the cluster they landed on.
absl::StatusOr<std::vector<Slot>> Allocate(engine::Writer& writer,
                                           int allocations_per_cluster) {
  std::vector<pb::Command> allocations;
  for (int i = 0; i < kClusters * allocations_per_cluster; ++i) {
    pb::Command c = NewCommand(EnterprisePrincipal(kEnterprise),
                               absl::StrCat("bench-alloc-", i));
    pb::ResourceRequest* r = c.mutable_allocate()->mutable_resources();
    r->set_gpu_model(kModel);
    r->set_gpu_count(1);
    r->set_max_duration_s(kAllocationSeconds);
    allocations.push_back(std::move(c));
  }
  const std::vector<absl::StatusOr<core::Outcome>> placed =
      SubmitConcurrently(writer, std::move(allocations), kClusters);
  RETURN_IF_ERROR(FirstError(placed, "allocate"));
  std::map<std::string, Slot> by_cluster;
  for (const auto& o : placed) {
    const auto& a = static_cast<const pb::Allocation&>(*o->response);
    if (a.state() != pb::ALLOCATION_STATE_ASSIGNED) {
      return absl::InternalError(absl::StrCat(
          "allocation ", a.allocation_id(), " is ",
          pb::AllocationState_Name(a.state()), ", expected ASSIGNED"));
    }
    ASSIGN_OR_RETURN(const absl::Time assigned,
                     FromProto("assigned_at", a.assigned_at()));
    Slot& slot = by_cluster[a.cluster_id()];
    slot.cluster_id = a.cluster_id();
    slot.meters.push_back(Meter{a.allocation_id(), 1, assigned});
  }
  std::vector<Slot> slots;
  for (auto& [id, slot] : by_cluster) {
    if (static_cast<int>(slot.meters.size()) != allocations_per_cluster) {
      return absl::InternalError(
          absl::StrCat("cluster ", id, " got ", slot.meters.size(),
                       " allocations, expected ", allocations_per_cluster));
    }
    slots.push_back(std::move(slot));
  }
  if (static_cast<int>(slots.size()) != kClusters) {
    return absl::InternalError(absl::StrCat("allocations landed on ",
                                            slots.size(),
                                            " clusters, expected ", kClusters));
  }
  return slots;
}

}  // namespace

pb::Command UsageCommand(const Slot& slot, absl::Time now,
                         const std::string& request_id) {
  pb::Command c = NewCommand(AgentPrincipal(slot.cluster_id), request_id);
  pb::ReportUsageRequest* r = c.mutable_report_usage();
  r->set_request_id(request_id);
  r->mutable_records()->Reserve(static_cast<int>(slot.meters.size()));
  for (const Meter& m : slot.meters) {
    pb::UsageRecord* u = r->add_records();
    u->set_allocation_id(m.allocation_id);
    u->set_sequence(m.next_sequence);
    *u->mutable_start() = ToProto(m.cursor);
    *u->mutable_end() = ToProto(now);
    u->set_gpu_ms(absl::ToInt64Milliseconds(now - m.cursor));
    u->set_mean_utilization_bp(10'000);
  }
  return c;
}

absl::StatusOr<std::vector<Slot>> Setup(engine::Writer& writer,
                                        int allocations_per_cluster) {
  RETURN_IF_ERROR(SubmitWorld(writer));
  RETURN_IF_ERROR(FundEnterprise(writer, allocations_per_cluster));
  RETURN_IF_ERROR(AddClusters(writer, allocations_per_cluster));
  return Allocate(writer, allocations_per_cluster);
}

}  // namespace computevoucher::bench::writer_bench
