// Saving the state machine's components as a snapshot
// (computevoucher/v1/snapshot.proto) and loading them back. Everything is
// saved as it is, derived indexes included, so that a loaded state goes on
// exactly as the original would; StateMachine::Load then checks the
// digest of what it loaded.
#include <algorithm>
#include <tuple>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "google/protobuf/any.pb.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "scheduler/core/books.h"
#include "scheduler/core/ledger.h"
#include "scheduler/core/placement.h"
#include "scheduler/core/registry.h"
#include "scheduler/core/state_machine.h"
#include "scheduler/core/voucher_book.h"

namespace computevoucher::core {
namespace {

using google::protobuf::RepeatedPtrField;

absl::Status Malformed(absl::string_view what, absl::string_view detail) {
  return absl::InvalidArgumentError(
      absl::StrCat("snapshot: ", what, ": ", detail));
}

// Copies the values of an id-keyed map into `out`, in id order.
template <typename Map, typename Message>
void SaveValues(const Map& map, RepeatedPtrField<Message>* out) {
  out->Reserve(static_cast<int>(map.size()));
  for (const auto& [id, value] : map) *out->Add() = value;
}

// Fills an id-keyed map from `in`, keyed by `id_of`; InvalidArgument naming
// `what` on an empty or repeated id.
template <typename Map, typename Message, typename IdOf>
absl::Status LoadValues(absl::string_view what,
                        const RepeatedPtrField<Message>& in, IdOf id_of,
                        Map* map) {
  for (const Message& value : in) {
    const std::string& id = id_of(value);
    if (id.empty() || !map->emplace(id, value).second) {
      return Malformed(what, absl::StrCat("empty or repeated id \"", id, "\""));
    }
  }
  return absl::OkStatus();
}

// Any map of scalars to a protobuf map, and back.
template <typename From, typename To>
void CopyMap(const From& from, To* to) {
  for (const auto& [key, value] : from) (*to)[key] = value;
}

template <typename Set>
void SaveTimed(const Set& set, RepeatedPtrField<pb::TimedId>* out) {
  for (const auto& [time, id] : set) {
    pb::TimedId& entry = *out->Add();
    *entry.mutable_time() = ToProto(time);
    entry.set_id(id);
  }
}

template <typename Set>
absl::Status LoadTimed(absl::string_view what,
                       const RepeatedPtrField<pb::TimedId>& in, Set* set) {
  for (const pb::TimedId& entry : in) {
    ASSIGN_OR_RETURN(const absl::Time time, FromProto(what, entry.time()));
    set->insert({time, entry.id()});
  }
  return absl::OkStatus();
}

// Lists of ids by key, in their order.
template <typename Map, typename ProtoMap>
void SaveIdLists(const Map& map, ProtoMap* out) {
  for (const auto& [key, ids] : map) {
    pb::IdList& list = (*out)[key];
    for (const std::string& id : ids) list.add_ids(id);
  }
}

template <typename ProtoMap, typename Map>
void LoadIdLists(const ProtoMap& in, Map* map) {
  for (const auto& [key, list] : in) {
    auto& ids = (*map)[key];
    for (const std::string& id : list.ids()) ids.insert(ids.end(), id);
  }
}

// A remembered response, which may be any of the RPCs' response messages.
absl::StatusOr<Response> UnpackResponse(const google::protobuf::Any& any) {
  std::string type_name;
  if (!google::protobuf::Any::ParseAnyTypeUrl(any.type_url(), &type_name)) {
    return Malformed("idempotency", absl::StrCat("bad type URL \"",
                                                 any.type_url(), "\""));
  }
  const google::protobuf::Descriptor* descriptor =
      google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(
          type_name);
  if (descriptor == nullptr) {
    return Malformed("idempotency",
                     absl::StrCat("unknown response type \"", type_name, "\""));
  }
  std::unique_ptr<google::protobuf::Message> message(
      google::protobuf::MessageFactory::generated_factory()
          ->GetPrototype(descriptor)
          ->New());
  if (!any.UnpackTo(message.get())) {
    return Malformed("idempotency",
                     absl::StrCat("a ", type_name, " that does not parse"));
  }
  return Response(std::move(message));
}

}  // namespace

void Ledger::Save(pb::LedgerSnapshot* out) const {
  CopyMap(balances_, out->mutable_balances());
  // In order, so that equal ledgers save equal bytes.
  std::vector<std::string> keys(keys_.begin(), keys_.end());
  std::sort(keys.begin(), keys.end());
  out->mutable_keys()->Reserve(static_cast<int>(keys.size()));
  for (std::string& key : keys) out->add_keys(std::move(key));
  CopyMap(charge_marks_, out->mutable_charge_marks());
  out->set_last_sequence(last_sequence_);
  out->set_last_hash(last_hash_);
}

absl::Status Ledger::Load(const pb::LedgerSnapshot& in) {
  if (last_sequence_ != 0) {
    return absl::FailedPreconditionError(
        "ledger: a snapshot loads only into an empty ledger");
  }
  if (in.last_hash().size() != kSha256Bytes || in.last_sequence() < 0) {
    return Malformed("ledger", absl::StrCat("head ", in.last_sequence(), " ",
                                            ToHex(in.last_hash())));
  }
  CopyMap(in.balances(), &balances_);
  keys_.insert(in.keys().begin(), in.keys().end());
  CopyMap(in.charge_marks(), &charge_marks_);
  last_sequence_ = in.last_sequence();
  last_hash_ = in.last_hash();
  return absl::OkStatus();
}

void Books::Save(pb::BooksSnapshot* out) const {
  ledger_.Save(out->mutable_ledger());
  *out->mutable_now() = ToProto(now_);
  for (const auto& [program, totals] : program_totals_) {
    pb::ProgramTotalsSnapshot& t = (*out->mutable_program_totals())[program];
    t.set_issued_fen(totals.issued_fen);
    t.set_held_fen(totals.held_fen);
    t.set_charged_fen(totals.charged_fen);
    t.set_returned_fen(totals.returned_fen);
  }
}

absl::Status Books::Load(const pb::BooksSnapshot& in) {
  RETURN_IF_ERROR(ledger_.Load(in.ledger()));
  ASSIGN_OR_RETURN(now_, FromProto("snapshot: books.now", in.now()));
  for (const auto& [program, t] : in.program_totals()) {
    program_totals_[program] = ProgramTotals{t.issued_fen(), t.held_fen(),
                                             t.charged_fen(), t.returned_fen()};
  }
  return absl::OkStatus();
}

void Registry::Save(pb::RegistrySnapshot* out) const {
  SaveValues(state_.programs, out->mutable_programs());
  SaveValues(state_.enterprises, out->mutable_enterprises());
  SaveValues(state_.providers, out->mutable_providers());
  SaveValues(state_.tokens, out->mutable_tokens());
  for (const auto& [id, rec] : state_.clusters) {
    pb::ClusterSnapshot& cluster = *out->add_clusters();
    *cluster.mutable_cluster() = rec.cluster;
    CopyMap(rec.used_gpus, cluster.mutable_used_gpus());
  }
  CopyMap(state_.credit_codes, out->mutable_credit_codes());
  std::vector<std::pair<std::string, std::string>> hashes(
      state_.token_hashes.begin(), state_.token_hashes.end());
  std::sort(hashes.begin(), hashes.end());
  for (auto& [hash, token_id] : hashes) {
    pb::TokenHash& entry = *out->add_token_hashes();
    entry.set_secret_sha256(std::move(hash));
    entry.set_token_id(std::move(token_id));
  }
  CopyMap(state_.cluster_owner, out->mutable_cluster_owner());
  out->set_next_program(state_.next_program);
  out->set_next_enterprise(state_.next_enterprise);
  out->set_next_provider(state_.next_provider);
  out->set_next_token(state_.next_token);
  out->set_next_settlement(state_.next_settlement);
}

absl::Status Registry::Load(const pb::RegistrySnapshot& in) {
  RETURN_IF_ERROR(LoadValues(
      "programs", in.programs(),
      [](const pb::Program& p) -> const std::string& { return p.program_id(); },
      &state_.programs));
  RETURN_IF_ERROR(LoadValues(
      "enterprises", in.enterprises(),
      [](const pb::Enterprise& e) -> const std::string& {
        return e.enterprise_id();
      },
      &state_.enterprises));
  RETURN_IF_ERROR(LoadValues(
      "providers", in.providers(),
      [](const pb::Provider& p) -> const std::string& {
        return p.provider_id();
      },
      &state_.providers));
  RETURN_IF_ERROR(LoadValues(
      "tokens", in.tokens(),
      [](const pb::Token& t) -> const std::string& { return t.token_id(); },
      &state_.tokens));
  for (const pb::ClusterSnapshot& cluster : in.clusters()) {
    ClusterRec rec;
    rec.cluster = cluster.cluster();
    CopyMap(cluster.used_gpus(), &rec.used_gpus);
    const std::string id = rec.cluster.cluster_id();
    if (id.empty() || !state_.clusters.emplace(id, std::move(rec)).second) {
      return Malformed("clusters", absl::StrCat("empty or repeated id \"", id,
                                                "\""));
    }
  }
  CopyMap(in.credit_codes(), &state_.credit_codes);
  for (const pb::TokenHash& entry : in.token_hashes()) {
    state_.token_hashes[entry.secret_sha256()] = entry.token_id();
  }
  CopyMap(in.cluster_owner(), &state_.cluster_owner);
  state_.next_program = in.next_program();
  state_.next_enterprise = in.next_enterprise();
  state_.next_provider = in.next_provider();
  state_.next_token = in.next_token();
  state_.next_settlement = in.next_settlement();
  return absl::OkStatus();
}

void VoucherBook::Save(pb::VoucherBookSnapshot* out) const {
  SaveValues(state_.applications, out->mutable_applications());
  for (const auto& [id, rec] : state_.vouchers) {
    pb::VoucherSnapshot& voucher = *out->add_vouchers();
    *voucher.mutable_voucher() = rec.voucher;
    voucher.set_adjustments(rec.adjustments);
  }
  SaveIdLists(state_.enterprise_vouchers, out->mutable_enterprise_vouchers());
  SaveTimed(state_.expiry_index, out->mutable_expiry_index());
  out->set_next_application(state_.next_application);
  out->set_next_voucher(state_.next_voucher);
  for (const auto& [key, sums] : state_.retired) {
    pb::RetiredVoucherSums& r = *out->add_retired();
    r.set_program_id(std::get<0>(key));
    r.set_enterprise_id(std::get<1>(key));
    r.set_year(std::get<2>(key));
    r.set_state(static_cast<pb::VoucherState>(std::get<3>(key)));
    r.set_vouchers(sums.vouchers);
    r.set_face_value_fen(sums.face_value_fen);
    r.set_charged_fen(sums.charged_fen);
    r.set_returned_fen(sums.returned_fen);
  }
}

absl::Status VoucherBook::Load(const pb::VoucherBookSnapshot& in) {
  RETURN_IF_ERROR(LoadValues(
      "applications", in.applications(),
      [](const pb::Application& a) -> const std::string& {
        return a.application_id();
      },
      &state_.applications));
  for (const pb::VoucherSnapshot& voucher : in.vouchers()) {
    const std::string& id = voucher.voucher().voucher_id();
    if (id.empty() ||
        !state_.vouchers
             .emplace(id, VoucherRec{voucher.voucher(), voucher.adjustments()})
             .second) {
      return Malformed("vouchers", absl::StrCat("empty or repeated id \"", id,
                                                "\""));
    }
    ASSIGN_OR_RETURN(const absl::Time until,
                     FromProto("snapshot: voucher valid_until",
                               voucher.voucher().valid_until()));
    state_.window_index.insert({until, id});
  }
  LoadIdLists(in.enterprise_vouchers(), &state_.enterprise_vouchers);
  RETURN_IF_ERROR(LoadTimed("snapshot: voucher expiry", in.expiry_index(),
                            &state_.expiry_index));
  state_.next_application = in.next_application();
  state_.next_voucher = in.next_voucher();
  for (const pb::RetiredVoucherSums& r : in.retired()) {
    RetiredVoucherSums& sums =
        state_
            .retired[{r.program_id(), r.enterprise_id(), r.year(), r.state()}];
    sums.vouchers = r.vouchers();
    sums.face_value_fen = r.face_value_fen();
    sums.charged_fen = r.charged_fen();
    sums.returned_fen = r.returned_fen();
  }
  return absl::OkStatus();
}

void Placement::Save(pb::PlacementSnapshot* out) const {
  out->mutable_allocations()->Reserve(
      static_cast<int>(state_.allocations.size()));
  for (const auto& [id, rec] : state_.allocations) {
    pb::AllocationSnapshot& a = *out->add_allocations();
    *a.mutable_allocation() = rec.allocation;
    a.set_subsidised_gpu_ms(rec.subsidised_gpu_ms);
    if (rec.last_usage_end != absl::InfinitePast()) {
      *a.mutable_last_usage_end() = ToProto(rec.last_usage_end);
    }
    a.set_extensions(rec.extensions);
    a.set_queue_order(rec.queue_order);
    a.set_hold_released(rec.hold_released);
  }
  SaveIdLists(state_.voucher_allocations, out->mutable_voucher_allocations());
  SaveTimed(state_.deadline_index, out->mutable_deadline_index());
  SaveTimed(state_.release_index, out->mutable_release_index());
  SaveIdLists(state_.cluster_allocations, out->mutable_cluster_allocations());
  for (const auto& [order, id] : state_.queue) {
    pb::QueueEntry& entry = *out->add_queue();
    entry.set_order(order);
    entry.set_id(id);
  }
  CopyMap(state_.enterprise_gpus, out->mutable_enterprise_gpus());
  out->set_next_allocation(state_.next_allocation);
  for (const auto& [key, sums] : state_.retired) {
    pb::RetiredSums& r = *out->add_retired();
    r.set_program_id(std::get<0>(key));
    r.set_enterprise_id(std::get<1>(key));
    r.set_provider_id(std::get<2>(key));
    r.set_hardware_class(static_cast<pb::HardwareClass>(std::get<3>(key)));
    r.set_allocations(sums.allocations);
    r.set_used_gpu_ms(sums.used_gpu_ms);
    r.set_cost_fen(sums.cost_fen);
    r.set_charged_fen(sums.charged_fen);
  }
}

absl::Status Placement::Load(const pb::PlacementSnapshot& in) {
  for (const pb::AllocationSnapshot& a : in.allocations()) {
    AllocationRec rec;
    rec.allocation = a.allocation();
    rec.subsidised_gpu_ms = a.subsidised_gpu_ms();
    if (a.has_last_usage_end()) {
      ASSIGN_OR_RETURN(rec.last_usage_end,
                       FromProto("snapshot: last_usage_end",
                                 a.last_usage_end()));
    }
    rec.extensions = a.extensions();
    rec.queue_order = a.queue_order();
    rec.hold_released = a.hold_released();
    const std::string id = rec.allocation.allocation_id();
    if (rec.hold_released) {
      // Derived: the allocations retired in their turn.
      ASSIGN_OR_RETURN(const absl::Time ended,
                       FromProto("snapshot: ended_at",
                                 rec.allocation.ended_at()));
      state_.retire_index.insert({ended, id});
    }
    if (id.empty() || !state_.allocations.emplace(id, std::move(rec)).second) {
      return Malformed("allocations", absl::StrCat("empty or repeated id \"",
                                                   id, "\""));
    }
  }
  LoadIdLists(in.voucher_allocations(), &state_.voucher_allocations);
  RETURN_IF_ERROR(LoadTimed("snapshot: allocation deadline",
                            in.deadline_index(), &state_.deadline_index));
  RETURN_IF_ERROR(LoadTimed("snapshot: allocation release",
                            in.release_index(), &state_.release_index));
  LoadIdLists(in.cluster_allocations(), &state_.cluster_allocations);
  for (const pb::QueueEntry& entry : in.queue()) {
    state_.queue.insert({entry.order(), entry.id()});
  }
  CopyMap(in.enterprise_gpus(), &state_.enterprise_gpus);
  state_.next_allocation = in.next_allocation();
  for (const pb::RetiredSums& r : in.retired()) {
    RetiredSums& sums =
        state_.retired[{r.program_id(), r.enterprise_id(), r.provider_id(),
                        r.hardware_class()}];
    sums.allocations = r.allocations();
    sums.used_gpu_ms = r.used_gpu_ms();
    sums.cost_fen = r.cost_fen();
    sums.charged_fen = r.charged_fen();
  }
  return absl::OkStatus();
}

pb::StateSnapshot StateMachine::Save() const {
  pb::StateSnapshot out;
  out.set_last_command_sequence(last_command_sequence_);
  out.set_digest(Digest());
  books_.Save(out.mutable_books());
  registry_.Save(out.mutable_registry());
  voucher_book_.Save(out.mutable_voucher_book());
  placement_.Save(out.mutable_placement());
  if (last_archive_.has_through()) *out.mutable_last_archive() = last_archive_;
  std::vector<const std::string*> keys;
  keys.reserve(idempotency_.size());
  for (const auto& [key, rec] : idempotency_) keys.push_back(&key);
  std::sort(keys.begin(), keys.end(),
            [](const std::string* a, const std::string* b) { return *a < *b; });
  for (const std::string* key : keys) {
    const IdempotencyRec& rec = idempotency_.at(*key);
    pb::IdempotencySnapshot& entry = *out.add_idempotency();
    entry.set_key(*key);
    entry.set_fingerprint(rec.fingerprint);
    entry.mutable_response()->PackFrom(*rec.response);
    *entry.mutable_at() = ToProto(rec.at);
  }
  return out;
}

absl::Status StateMachine::Load(const pb::StateSnapshot& snapshot) {
  if (last_command_sequence_ != 0 || books_.now() != absl::InfinitePast()) {
    return absl::FailedPreconditionError(
        "state machine: a snapshot loads only into a fresh one");
  }
  if (snapshot.last_command_sequence() < 1) {
    return Malformed("last_command_sequence",
                     absl::StrCat(snapshot.last_command_sequence()));
  }
  RETURN_IF_ERROR(books_.Load(snapshot.books()));
  RETURN_IF_ERROR(registry_.Load(snapshot.registry()));
  RETURN_IF_ERROR(voucher_book_.Load(snapshot.voucher_book()));
  RETURN_IF_ERROR(placement_.Load(snapshot.placement()));
  for (const pb::IdempotencySnapshot& entry : snapshot.idempotency()) {
    ASSIGN_OR_RETURN(Response response, UnpackResponse(entry.response()));
    ASSIGN_OR_RETURN(const absl::Time at,
                     FromProto("snapshot: idempotency.at", entry.at()));
    if (!idempotency_
             .emplace(entry.key(), IdempotencyRec{entry.fingerprint(),
                                                  std::move(response), at})
             .second) {
      return Malformed("idempotency",
                       absl::StrCat("repeated key \"", entry.key(), "\""));
    }
    idempotency_by_time_.insert({at, entry.key()});
  }
  last_command_sequence_ = snapshot.last_command_sequence();
  last_archive_ = snapshot.last_archive();
  if (const std::string digest = Digest(); digest != snapshot.digest()) {
    return absl::DataLossError(absl::StrCat(
        "snapshot at command ", last_command_sequence_,
        ": the state loaded has digest ", ToHex(digest), ", saved with ",
        ToHex(snapshot.digest())));
  }
  return absl::OkStatus();
}

}  // namespace computevoucher::core
