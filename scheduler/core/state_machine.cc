#include "scheduler/core/state_machine.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "common/validate.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace computevoucher::core {
namespace {

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
    case pb::Command::kArchive:  // once per range, by its journal key
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

absl::StatusOr<Outcome> StateMachine::Apply(const pb::Command& command) {
  ASSIGN_OR_RETURN(const absl::Time time,
                   FromProto("command.time", command.time()));
  const absl::Time previous_now = books_.now();
  if (time < previous_now) {
    return absl::InvalidArgumentError(
        absl::StrCat("command.time: ", FormatInstant(time, true),
                     " is before the previous command's ",
                     FormatInstant(previous_now, true)));
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
    // A retry may come over another connection.
    if (body.has_principal()) body.mutable_principal()->clear_peer();
    // A revocation retried across the upgrade that records who revoked is
    // the same request.
    if (body.has_revoke_token_recorded()) {
      pb::RevokeTokenRequest request =
          std::move(*body.mutable_revoke_token_recorded()->mutable_request());
      *body.mutable_revoke_token() = std::move(request);
    }
    // An allocation retried across the upgrade that matches model names
    // in any case is the same request.
    if (body.has_allocate()) {
      body.mutable_allocate()->mutable_resources()->clear_model_any_case();
    }
    // A retried CreateToken comes with a new secret; the request is the
    // same.
    if (body.has_create_token())
      body.mutable_create_token()->clear_secret_sha256();
    fingerprint = Sha256(Deterministic(body));
    auto it = idempotency_.find(key);
    if (it != idempotency_.end() &&
        it->second.at + kRequestIdRetention > time) {
      if (it->second.fingerprint != fingerprint) {
        return absl::InvalidArgumentError(
            absl::StrCat("request_id: \"", command.request_id(),
                         "\" was already used for a different request"));
      }
      return Outcome{it->second.response, false};
    }
  }

  // Handlers run at the command's time and validate before mutating; a
  // failing handler leaves everything as it was, including now().
  books_.set_now(time);
  books_.set_command_sequence(command.sequence());
  absl::StatusOr<Reply> reply = Dispatch(command);
  if (!reply.ok()) {
    books_.set_now(previous_now);
    return reply.status();
  }
  Outcome outcome{std::move(reply->response), reply->changed};
  if (outcome.changed) {
    last_command_sequence_ = command.sequence();
    ForgetOldRequestIds();
    if (!key.empty()) {
      idempotency_[key] =
          IdempotencyRec{std::move(fingerprint), outcome.response, time};
      idempotency_by_time_.insert({time, std::move(key)});
    }
  }
  return outcome;
}

void StateMachine::ForgetOldRequestIds() {
  const absl::Time cutoff = books_.now() - kRequestIdRetention;
  while (!idempotency_by_time_.empty() &&
         idempotency_by_time_.begin()->first <= cutoff) {
    auto oldest = idempotency_by_time_.begin();
    auto it = idempotency_.find(oldest->second);
    // A key used again after it expired belongs to its newer use.
    if (it != idempotency_.end() && it->second.at == oldest->first) {
      idempotency_.erase(it);
    }
    idempotency_by_time_.erase(oldest);
  }
}

absl::StatusOr<Reply> StateMachine::Dispatch(const pb::Command& c) {
  const pb::Principal& p = c.principal();
  switch (c.body_case()) {
    case pb::Command::kTick:
      return Tick(c.tick());
    case pb::Command::kArchive:
      return Archive(c);
    case pb::Command::kSetClusterState:
      return SetClusterState(c.set_cluster_state());
    case pb::Command::kRegisterCluster:
      return RegisterCluster(p, c.register_cluster());
    case pb::Command::kBatchIssueVouchers:
      return voucher_book_.BatchIssueVouchers(c.batch_issue_vouchers());
    case pb::Command::kReportUsage:
      return usage_charging_.ReportUsage(p, c.report_usage());
    case pb::Command::kHeartbeat:
      return placement_.Heartbeat(p, c.heartbeat());
    case pb::Command::kClusterLost:
      return placement_.ClusterLost(c.cluster_lost());
    default:
      break;
  }
  ASSIGN_OR_RETURN(Response response, DispatchToComponent(c));
  return Reply{std::move(response)};
}

absl::StatusOr<Response> StateMachine::DispatchToComponent(
    const pb::Command& c) {
  const pb::Principal& p = c.principal();
  switch (c.body_case()) {
    case pb::Command::kBootstrapAdmin:
      return registry_.BootstrapAdmin(c.bootstrap_admin());
    case pb::Command::kCreateToken:
      return registry_.CreateToken(c.create_token());
    case pb::Command::kRevokeToken:
      return registry_.RevokeToken(c.revoke_token(), nullptr);
    case pb::Command::kRevokeTokenRecorded:
      return registry_.RevokeToken(c.revoke_token_recorded().request(),
                                   &p.token_id());
    case pb::Command::kCreateProgram:
      return registry_.CreateProgram(c.create_program());
    case pb::Command::kRegisterEnterprise:
      return registry_.RegisterEnterprise(c.register_enterprise());
    case pb::Command::kSetRelatedProviders:
      return registry_.SetRelatedProviders(c.set_related_providers());
    case pb::Command::kRegisterProvider:
      return registry_.RegisterProvider(c.register_provider());
    case pb::Command::kSettleProvider:
      return registry_.SettleProvider(c.settle_provider());
    case pb::Command::kApply:
      return voucher_book_.ApplyForVoucher(p, c.apply());
    case pb::Command::kApproveApplication:
      return voucher_book_.ApproveApplication(c.approve_application());
    case pb::Command::kRejectApplication:
      return voucher_book_.RejectApplication(c.reject_application());
    case pb::Command::kIssueVoucher:
      return voucher_book_.IssueVoucher(c.issue_voucher());
    case pb::Command::kSuspendVoucher:
      return SuspendVoucher(c.suspend_voucher());
    case pb::Command::kResumeVoucher:
      return voucher_book_.ResumeVoucher(c.resume_voucher());
    case pb::Command::kRevokeVoucher:
      return RevokeVoucher(c.revoke_voucher());
    case pb::Command::kAdjustVoucher:
      return voucher_book_.AdjustVoucher(c.adjust_voucher());
    case pb::Command::kAllocate:
      return placement_.Allocate(p, c.request_id(), c.allocate());
    case pb::Command::kReleaseAllocation:
      return placement_.ReleaseAllocation(p, c.release_allocation());
    case pb::Command::kExtendAllocation:
      return placement_.ExtendAllocation(p, c.extend_allocation());
    default:
      break;
  }
  return absl::InvalidArgumentError("command: no body");
}

// --- Commands that span components ---

absl::StatusOr<Reply> StateMachine::Archive(const pb::Command& c) {
  const pb::ArchiveCommand& r = c.archive();
  if (!c.principal().token_id().empty() ||
      c.principal().role() != pb::ROLE_UNSPECIFIED) {
    return absl::PermissionDeniedError(
        "archive: only the scheduler's archive tool anchors archives");
  }
  const Ledger& ledger = books_.ledger();
  const pb::LogPosition& t = r.through();
  RETURN_IF_ERROR(
      CheckRange("through.command", t.command(), 1, c.sequence() - 1));
  RETURN_IF_ERROR(
      CheckRange("through.entry", t.entry(), 0, ledger.last_sequence()));
  RETURN_IF_ERROR(CheckRange("through.usage", t.usage(), 0,
                             std::numeric_limits<int64_t>::max()));
  if ((t.entry() > 0 && t.entry_hash().size() != kSha256Bytes) ||
      r.manifest_sha256().size() != kSha256Bytes) {
    return absl::InvalidArgumentError(
        "through.entry_hash, manifest_sha256: must be SHA-256 hashes (32 "
        "bytes)");
  }
  ASSIGN_OR_RETURN(const absl::Time before, FromProto("before", r.before()));
  pb::JournalEntry anchor;
  anchor.set_kind(pb::ENTRY_KIND_ARCHIVE);
  anchor.set_idempotency_key(ArchiveKey(t.command()));
  anchor.set_memo(absl::StrCat(
      "archived commands through ", t.command(), ", entries through ",
      t.entry(), " (hash ", ToHex(t.entry_hash()), "), usage records through ",
      t.usage(), ", applied before ", FormatInstant(before, true),
      "; manifest.json SHA-256 ", ToHex(r.manifest_sha256())));
  RETURN_IF_ERROR(books_.Anchor(std::move(anchor)));
  last_archive_ = r;
  return Reply{Share(pb::ArchiveCommand(r)), true};
}

absl::StatusOr<Reply> StateMachine::SetClusterState(
    const pb::SetClusterStateRequest& r) {
  ASSIGN_OR_RETURN(const Registry::ClusterChange change,
                   registry_.SetClusterState(r));
  if (change.capacity_added) RETURN_IF_ERROR(placement_.ProcessQueue());
  return Reply{Share(*registry_.ClusterView(r.cluster_id())), change.changed};
}

absl::StatusOr<Reply> StateMachine::RegisterCluster(
    const pb::Principal& p, const pb::RegisterRequest& r) {
  ASSIGN_OR_RETURN(const Registry::ClusterChange change,
                   registry_.RegisterCluster(p, r));
  if (change.capacity_added) RETURN_IF_ERROR(placement_.ProcessQueue());
  pb::RegisterResponse response;
  *response.mutable_cluster() = *registry_.ClusterView(p.cluster_id());
  return Reply{Share(std::move(response)), change.changed};
}

absl::StatusOr<Response> StateMachine::SuspendVoucher(
    const pb::SuspendVoucherRequest& r) {
  ASSIGN_OR_RETURN(VoucherRec * rec, voucher_book_.Suspend(r));
  RETURN_IF_ERROR(placement_.EndVoucherAllocations(
      r.voucher_id(), pb::END_REASON_VOUCHER_SUSPENDED));
  return Share(voucher_book_.VoucherViewOf(*rec));
}

absl::StatusOr<Response> StateMachine::RevokeVoucher(
    const pb::RevokeVoucherRequest& r) {
  ASSIGN_OR_RETURN(VoucherRec * rec, voucher_book_.Revoke(r));
  RETURN_IF_ERROR(placement_.EndVoucherAllocations(
      r.voucher_id(), pb::END_REASON_VOUCHER_REVOKED));
  RETURN_IF_ERROR(voucher_book_.ReturnAvailable(*rec, pb::ENTRY_KIND_REVOKE,
                                                RevokeKey(r.voucher_id())));
  return Share(voucher_book_.VoucherViewOf(*rec));
}

absl::StatusOr<bool> StateMachine::ExpireVouchers() {
  bool any = false;
  while (std::optional<std::string> id =
             voucher_book_.TakeExpired(books_.now())) {
    any = true;
    if (!voucher_book_.Expire(*id)) continue;
    RETURN_IF_ERROR(
        placement_.EndVoucherAllocations(*id, pb::END_REASON_VOUCHER_EXPIRED));
    RETURN_IF_ERROR(voucher_book_.ReturnAvailable(
        voucher_book_.voucher(*id), pb::ENTRY_KIND_EXPIRE, ExpireKey(*id)));
  }
  return any;
}

absl::StatusOr<Reply> StateMachine::Tick(const pb::TickCommand& r) {
  RETURN_IF_ERROR(
      CheckRange("usage_grace_s", r.usage_grace_s(), 0, 7 * 24 * 3600));
  RETURN_IF_ERROR(
      CheckRange("retain_ended_s", r.retain_ended_s(), 0, kMaxRetainEndedS));
  if (r.retain_ended_s() > 0) {
    RETURN_IF_ERROR(CheckRange("retire_at_most", r.retire_at_most(), 1,
                               kMaxRetiredPerTick));
  }
  RETURN_IF_ERROR(CheckRange("retire_vouchers_at_most",
                             r.retire_vouchers_at_most(), 0,
                             r.retain_ended_s() > 0 ? kMaxRetiredPerTick : 0));
  RETURN_IF_ERROR(
      CheckRange("token_uses", r.token_uses_size(), 0, kMaxTokenUsesPerTick));
  const bool used = registry_.RecordTokenUses(r.token_uses());
  const int64_t journal_before = books_.ledger().last_sequence();
  // Vouchers past their window, allocations that reached their duration,
  // then holds of ended allocations once late usage had its grace period,
  // and allocations ended long enough ago.
  ASSIGN_OR_RETURN(const bool expired, ExpireVouchers());
  ASSIGN_OR_RETURN(const bool ended, placement_.EndDue());
  ASSIGN_OR_RETURN(const bool released, placement_.ReleaseDueHolds(
                                            absl::Seconds(r.usage_grace_s())));
  bool retired = false;
  if (r.retain_ended_s() > 0) {
    ASSIGN_OR_RETURN(retired,
                     placement_.RetireDue(absl::Seconds(r.retain_ended_s()),
                                          r.retire_at_most()));
  }
  // Then vouchers whose allocations have all retired.
  if (r.retire_vouchers_at_most() > 0) {
    const auto& in_use = placement_.state().voucher_allocations;
    ASSIGN_OR_RETURN(
        const bool vouchers,
        voucher_book_.RetireDue(
            absl::Seconds(r.retain_ended_s()), r.retire_vouchers_at_most(),
            [&in_use](const std::string& id) { return in_use.contains(id); }));
    retired = retired || vouchers;
  }
  const size_t queued_before = placement_.queued();
  RETURN_IF_ERROR(placement_.ProcessQueue());
  const bool changed = used || expired || ended || released || retired ||
                       placement_.queued() != queued_before ||
                       books_.ledger().last_sequence() != journal_before;
  return Reply{Share(pb::TickCommand(r)), changed};
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
  const Registry::State& registry = registry_.state();
  const VoucherBook::State& book = voucher_book_.state();
  const Placement::State& placement = placement_.state();
  const Ledger& ledger = books_.ledger();
  add(absl::StrCat(last_command_sequence_));
  add_map(registry.programs);
  add_map(registry.enterprises);
  add_map(registry.providers);
  add_map(book.applications);
  add_map(registry.tokens);
  for (const auto& [id, rec] : registry.clusters) {
    add(id);
    add(Deterministic(rec.cluster));
    std::vector<std::pair<std::string, int32_t>> used(rec.used_gpus.begin(),
                                                      rec.used_gpus.end());
    std::sort(used.begin(), used.end());
    for (const auto& [model, n] : used) add(absl::StrCat(model, "=", n));
  }
  for (const auto& [id, rec] : book.vouchers) {
    add(id);
    add(Deterministic(rec.voucher));
    add(absl::StrCat(rec.adjustments));
  }
  for (const auto& [id, rec] : placement.allocations) {
    add(id);
    add(Deterministic(rec.allocation));
    add(absl::StrCat(rec.subsidised_gpu_ms, ",",
                     absl::ToUnixNanos(rec.last_usage_end), ",", rec.extensions,
                     ",", rec.queue_order, ",", rec.hold_released));
  }
  std::vector<std::pair<std::string, int64_t>> balances(
      ledger.balances().begin(), ledger.balances().end());
  std::sort(balances.begin(), balances.end());
  for (const auto& [account, balance] : balances)
    add(absl::StrCat(account, "=", balance));
  add(absl::StrCat(ledger.last_sequence()));
  add(ledger.last_hash());
  for (const auto& [time, id] : placement.queue) add(absl::StrCat(time, id));
  for (const auto& [key, sums] : placement.retired) {
    const auto& [program, enterprise, provider, hardware] = key;
    add(absl::StrCat("retired ", program, ",", enterprise, ",", provider, ",",
                     hardware, "=", sums.allocations, ",", sums.used_gpu_ms,
                     ",", sums.cost_fen, ",", sums.charged_fen));
  }
  for (const auto& [key, sums] : book.retired) {
    const auto& [program, enterprise, year, state] = key;
    add(absl::StrCat("retired voucher ", program, ",", enterprise, ",", year,
                     ",", state, "=", sums.vouchers, ",", sums.face_value_fen,
                     ",", sums.charged_fen, ",", sums.returned_fen));
  }
  add(absl::StrCat(registry.next_program, ",", registry.next_enterprise, ",",
                   registry.next_provider, ",", book.next_application, ",",
                   book.next_voucher, ",", placement.next_allocation, ",",
                   registry.next_token, ",", registry.next_settlement, ",",
                   idempotency_.size()));
  // Only once archived, so that earlier digests stay as they were.
  if (last_archive_.has_through()) add(Deterministic(last_archive_));
  return Sha256(buf);
}

}  // namespace computevoucher::core
