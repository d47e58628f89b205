#include "scheduler/core/state_machine.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/money.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "common/validate.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "scheduler/core/pricing.h"

namespace computevoucher::core {
namespace {

std::string Deterministic(const google::protobuf::Message& m) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&coded);
  }
  return out;
}

// Requests whose request_id is not an idempotency key: usage is idempotent
// per (allocation, sequence), heartbeats are level-triggered, and ticks are
// the scheduler's own.
bool DedupedByRequestId(const pb::Command& c) {
  switch (c.body_case()) {
    case pb::Command::kTick:
    case pb::Command::kClusterLost:
    case pb::Command::kHeartbeat:
    case pb::Command::kReportUsage:
    case pb::Command::kBootstrapAdmin:
      return false;
    default:
      return true;
  }
}

std::string PrincipalKey(const pb::Principal& p) {
  if (!p.token_id().empty()) return p.token_id();
  return absl::StrCat("role", static_cast<int>(p.role()));
}

}  // namespace

absl::StatusOr<Outcome> StateMachine::Apply(const pb::Command& command) {
  ASSIGN_OR_RETURN(const absl::Time time,
                   FromProto("command.time", command.time()));
  if (time < now_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "command.time: ", FormatInstant(time, true),
        " is before the previous command's ", FormatInstant(now_, true)));
  }
  if (command.body_case() == pb::Command::BODY_NOT_SET) {
    return absl::InvalidArgumentError("command: no body");
  }

  std::string key;
  std::string fingerprint;
  if (DedupedByRequestId(command)) {
    RETURN_IF_ERROR(CheckRequestId(command.request_id()));
    key = absl::StrCat(PrincipalKey(command.principal()), "/",
                       command.request_id());
    // The body without the request id (its own field is repeated in
    // some bodies) identifies the request.
    pb::Command body = command;
    body.clear_sequence();
    body.clear_time();
    body.clear_request_id();
    // A retried CreateToken comes with a new secret; the request is the
    // same.
    if (body.has_create_token())
      body.mutable_create_token()->clear_secret_sha256();
    fingerprint = Sha256(Deterministic(body));
    auto it = idempotency_.find(key);
    if (it != idempotency_.end()) {
      if (it->second.fingerprint != fingerprint) {
        return absl::InvalidArgumentError(
            absl::StrCat("request_id: \"", command.request_id(),
                         "\" was already used for a different request"));
      }
      return Outcome{it->second.response, false};
    }
  }

  // Handlers run at the command's time and validate before mutating; a
  // failing handler leaves everything as it was, including now_.
  const absl::Time previous_now = now_;
  now_ = time;
  current_command_sequence_ = command.sequence();
  unchanged_ = false;
  absl::StatusOr<Response> response = Dispatch(command);
  if (!response.ok()) {
    now_ = previous_now;
    return response.status();
  }
  Outcome outcome{*std::move(response), !unchanged_};
  if (outcome.changed) {
    last_command_sequence_ = command.sequence();
    if (!key.empty()) {
      idempotency_[key] =
          IdempotencyRec{std::move(fingerprint), outcome.response};
    }
  }
  return outcome;
}

absl::StatusOr<StateMachine::Response> StateMachine::Dispatch(
    const pb::Command& c) {
  const pb::Principal& p = c.principal();
  switch (c.body_case()) {
    case pb::Command::kTick:
      return Tick(c.tick());
    case pb::Command::kBootstrapAdmin:
      return BootstrapAdmin(c.bootstrap_admin());
    case pb::Command::kCreateToken:
      return CreateToken(c.create_token());
    case pb::Command::kRevokeToken:
      return RevokeToken(c.revoke_token());
    case pb::Command::kCreateProgram:
      return CreateProgram(c.create_program());
    case pb::Command::kRegisterEnterprise:
      return RegisterEnterprise(c.register_enterprise());
    case pb::Command::kSetRelatedProviders:
      return SetRelatedProviders(c.set_related_providers());
    case pb::Command::kRegisterProvider:
      return RegisterProvider(c.register_provider());
    case pb::Command::kSetClusterState:
      return SetClusterState(c.set_cluster_state());
    case pb::Command::kApply:
      return ApplyForVoucher(p, c.apply());
    case pb::Command::kApproveApplication:
      return ApproveApplication(c.approve_application());
    case pb::Command::kRejectApplication:
      return RejectApplication(c.reject_application());
    case pb::Command::kIssueVoucher:
      return IssueVoucher(c.issue_voucher());
    case pb::Command::kBatchIssueVouchers:
      return BatchIssueVouchers(c.batch_issue_vouchers());
    case pb::Command::kSuspendVoucher:
      return SuspendVoucher(c.suspend_voucher());
    case pb::Command::kResumeVoucher:
      return ResumeVoucher(c.resume_voucher());
    case pb::Command::kRevokeVoucher:
      return RevokeVoucher(c.revoke_voucher());
    case pb::Command::kAdjustVoucher:
      return AdjustVoucher(c.adjust_voucher());
    case pb::Command::kAllocate:
      return Allocate(p, c.request_id(), c.allocate());
    case pb::Command::kReleaseAllocation:
      return ReleaseAllocation(p, c.release_allocation());
    case pb::Command::kExtendAllocation:
      return ExtendAllocation(p, c.extend_allocation());
    case pb::Command::kRegisterCluster:
      return RegisterCluster(p, c.register_cluster());
    case pb::Command::kReportUsage:
      return ReportUsage(p, c.report_usage());
    case pb::Command::kSettleProvider:
      return SettleProvider(c.settle_provider());
    case pb::Command::kHeartbeat:
      return Heartbeat(p, c.heartbeat());
    case pb::Command::kClusterLost:
      return ClusterLost(c.cluster_lost());
    case pb::Command::BODY_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("command: no body");
}

pb::JournalEntry StateMachine::Entry(pb::EntryKind kind, std::string debit,
                                     std::string credit, int64_t amount,
                                     std::string key) {
  pb::JournalEntry entry;
  entry.set_kind(kind);
  entry.set_debit_account(std::move(debit));
  entry.set_credit_account(std::move(credit));
  entry.set_amount_fen(amount);
  entry.set_idempotency_key(std::move(key));
  return entry;
}

pb::JournalEntry StateMachine::AllocationEntry(
    pb::EntryKind kind, std::string debit, std::string credit, int64_t amount,
    std::string key, const pb::Allocation& allocation) {
  pb::JournalEntry entry =
      Entry(kind, std::move(debit), std::move(credit), amount, std::move(key));
  entry.set_program_id(allocation.program_id());
  entry.set_voucher_id(allocation.voucher_id());
  entry.set_allocation_id(allocation.allocation_id());
  entry.set_provider_id(allocation.provider_id());
  return entry;
}

absl::Status StateMachine::Post(pb::JournalEntry entry) {
  const pb::EntryKind kind = entry.kind();
  const int64_t amount = entry.amount_fen();
  pb::Voucher* voucher = nullptr;
  if (!entry.voucher_id().empty()) {
    auto it = vouchers_.find(entry.voucher_id());
    if (it == vouchers_.end()) {
      return absl::InternalError(absl::StrCat(
          "journal entry for unknown voucher ", entry.voucher_id()));
    }
    voucher = &it->second.voucher;
  }
  AllocationRec* allocation = nullptr;
  if (!entry.allocation_id().empty()) {
    auto it = allocations_.find(entry.allocation_id());
    if (it == allocations_.end()) {
      return absl::InternalError(absl::StrCat(
          "journal entry for unknown allocation ", entry.allocation_id()));
    }
    allocation = &it->second;
  }
  const bool to_voucher =
      voucher != nullptr &&
      entry.debit_account() == VoucherAccount(voucher->voucher_id());
  const std::string program_id = entry.program_id();
  entry.set_command_sequence(current_command_sequence_);
  RETURN_IF_ERROR(ledger_.Post(std::move(entry), now_));

  // Sums that the invariant checker re-derives from the journal.
  int64_t held = 0, charged = 0, returned = 0, issued = 0;
  switch (kind) {
    case pb::ENTRY_KIND_ISSUE:
      issued = amount;
      break;
    case pb::ENTRY_KIND_ADJUST:
      issued = to_voucher ? amount : -amount;
      break;
    case pb::ENTRY_KIND_HOLD:
      held = amount;
      break;
    case pb::ENTRY_KIND_CHARGE:
      held = -amount;
      charged = amount;
      break;
    case pb::ENTRY_KIND_RELEASE:
      held = -amount;
      break;
    case pb::ENTRY_KIND_EXPIRE:
    case pb::ENTRY_KIND_REVOKE:
      returned = amount;
      break;
    default:
      break;
  }
  if (voucher != nullptr) {
    voucher->set_face_value_fen(voucher->face_value_fen() + issued);
    voucher->set_held_fen(voucher->held_fen() + held);
    voucher->set_charged_fen(voucher->charged_fen() + charged);
    voucher->set_returned_fen(voucher->returned_fen() + returned);
  }
  if (allocation != nullptr) {
    pb::Allocation& a = allocation->allocation;
    a.set_held_fen(a.held_fen() + held);
    a.set_charged_fen(a.charged_fen() + charged);
  }
  ProgramTotals& totals = program_totals_[program_id];
  totals.issued_fen += issued;
  totals.held_fen += held;
  totals.charged_fen += charged;
  totals.returned_fen += returned;
  return absl::OkStatus();
}

std::string StateMachine::NextId(const char* prefix, int64_t* counter,
                                 int width) {
  ++*counter;
  return absl::StrFormat("%s-%0*d", prefix, width, *counter);
}

const pb::Token* StateMachine::FindTokenByHash(
    const std::string& secret_sha256) const {
  auto it = token_hashes_.find(secret_sha256);
  if (it == token_hashes_.end()) return nullptr;
  auto token = tokens_.find(it->second);
  return token == tokens_.end() ? nullptr : &token->second;
}

std::vector<std::string> StateMachine::ClusterIds() const {
  std::vector<std::string> ids;
  for (const auto& [id, rec] : clusters_) ids.push_back(id);
  return ids;
}

std::vector<std::string> StateMachine::VoucherIds() const {
  std::vector<std::string> ids;
  for (const auto& [id, rec] : vouchers_) ids.push_back(id);
  return ids;
}

std::vector<std::string> StateMachine::AllocationIds() const {
  std::vector<std::string> ids;
  for (const auto& [id, rec] : allocations_) ids.push_back(id);
  return ids;
}

absl::StatusOr<pb::Program> StateMachine::ProgramView(
    const std::string& program_id) const {
  auto it = programs_.find(program_id);
  if (it == programs_.end()) {
    return absl::NotFoundError(
        absl::StrCat("program ", program_id, " not found"));
  }
  pb::Program view = it->second;
  view.set_unissued_fen(ledger_.Balance(ProgramBudgetAccount(program_id)));
  auto totals = program_totals_.find(program_id);
  if (totals != program_totals_.end()) {
    view.set_issued_fen(totals->second.issued_fen);
    view.set_held_fen(totals->second.held_fen);
    view.set_charged_fen(totals->second.charged_fen);
    view.set_returned_fen(totals->second.returned_fen);
  }
  return view;
}

absl::StatusOr<pb::Provider> StateMachine::ProviderView(
    const std::string& provider_id) const {
  auto it = providers_.find(provider_id);
  if (it == providers_.end()) {
    return absl::NotFoundError(
        absl::StrCat("provider ", provider_id, " not found"));
  }
  pb::Provider view = it->second;
  view.set_payable_fen(ledger_.Balance(PayableAccount(provider_id)));
  view.set_paid_fen(ledger_.Balance(PaidAccount(provider_id)));
  return view;
}

pb::Cluster StateMachine::ClusterViewOf(const ClusterRec& rec) const {
  pb::Cluster view = rec.cluster;
  for (pb::GpuModel& model : *view.mutable_inventory()) {
    auto used = rec.used_gpus.find(model.model());
    const int32_t in_use = used == rec.used_gpus.end() ? 0 : used->second;
    model.set_free_gpus(std::max(0, model.gpu_count() - in_use));
  }
  return view;
}

absl::StatusOr<pb::Cluster> StateMachine::ClusterView(
    const std::string& cluster_id) const {
  auto it = clusters_.find(cluster_id);
  if (it == clusters_.end()) {
    return absl::NotFoundError(
        absl::StrCat("cluster ", cluster_id, " not found"));
  }
  return ClusterViewOf(it->second);
}

pb::Voucher StateMachine::VoucherViewOf(const VoucherRec& rec) const {
  pb::Voucher view = rec.voucher;
  view.set_available_fen(ledger_.Balance(VoucherAccount(view.voucher_id())));
  return view;
}

absl::StatusOr<pb::Voucher> StateMachine::VoucherView(
    const std::string& voucher_id) const {
  auto it = vouchers_.find(voucher_id);
  if (it == vouchers_.end()) {
    return absl::NotFoundError(
        absl::StrCat("voucher ", voucher_id, " not found"));
  }
  return VoucherViewOf(it->second);
}

pb::Allocation StateMachine::AllocationViewOf(const AllocationRec& rec) const {
  pb::Allocation view = rec.allocation;
  auto cost = CostFen(view.used_gpu_ms(), view.price_fen_per_gpu_hour());
  view.set_cost_fen(cost.ok() ? *cost : 0);
  return view;
}

absl::StatusOr<pb::Allocation> StateMachine::AllocationView(
    const std::string& allocation_id) const {
  auto it = allocations_.find(allocation_id);
  if (it == allocations_.end()) {
    return absl::NotFoundError(
        absl::StrCat("allocation ", allocation_id, " not found"));
  }
  return AllocationViewOf(it->second);
}

absl::StatusOr<const pb::Enterprise*> StateMachine::FindEnterprise(
    const std::string& field, const std::string& id) const {
  RETURN_IF_ERROR(CheckIdRef(field, id));
  auto it = enterprises_.find(id);
  if (it == enterprises_.end()) {
    return absl::NotFoundError(
        absl::StrCat(field, ": enterprise ", id, " not found"));
  }
  return &it->second;
}

absl::StatusOr<StateMachine::VoucherRec*> StateMachine::FindVoucher(
    const std::string& id) {
  RETURN_IF_ERROR(CheckIdRef("voucher_id", id));
  auto it = vouchers_.find(id);
  if (it == vouchers_.end()) {
    return absl::NotFoundError(
        absl::StrCat("voucher_id: voucher ", id, " not found"));
  }
  return &it->second;
}

std::string StateMachine::Digest() const {
  std::string buf;
  auto add = [&buf](absl::string_view s) {
    absl::StrAppend(&buf, s.size(), ":", s, ";");
  };
  auto add_map = [&](const auto& map) {
    for (const auto& [id, value] : map) {
      add(id);
      add(Deterministic(value));
    }
  };
  add(absl::StrCat(last_command_sequence_));
  add_map(programs_);
  add_map(enterprises_);
  add_map(providers_);
  add_map(applications_);
  add_map(tokens_);
  for (const auto& [id, rec] : clusters_) {
    add(id);
    add(Deterministic(rec.cluster));
    std::vector<std::pair<std::string, int32_t>> used(rec.used_gpus.begin(),
                                                      rec.used_gpus.end());
    std::sort(used.begin(), used.end());
    for (const auto& [model, n] : used) add(absl::StrCat(model, "=", n));
  }
  for (const auto& [id, rec] : vouchers_) {
    add(id);
    add(Deterministic(rec.voucher));
    add(absl::StrCat(rec.adjustments));
  }
  for (const auto& [id, rec] : allocations_) {
    add(id);
    add(Deterministic(rec.allocation));
    add(absl::StrCat(rec.subsidised_gpu_ms, ",",
                     absl::ToUnixNanos(rec.last_usage_end), ",", rec.extensions,
                     ",", rec.queue_order, ",", rec.hold_released));
  }
  std::vector<std::pair<std::string, int64_t>> balances(
      ledger_.balances().begin(), ledger_.balances().end());
  std::sort(balances.begin(), balances.end());
  for (const auto& [account, balance] : balances)
    add(absl::StrCat(account, "=", balance));
  add(absl::StrCat(ledger_.last_sequence()));
  add(ledger_.last_hash());
  for (const auto& [time, id] : queue_) add(absl::StrCat(time, id));
  add(absl::StrCat(next_program_, ",", next_enterprise_, ",", next_provider_,
                   ",", next_application_, ",", next_voucher_, ",",
                   next_allocation_, ",", next_token_, ",", next_settlement_,
                   ",", idempotency_.size()));
  return Sha256(buf);
}

}  // namespace computevoucher::core
