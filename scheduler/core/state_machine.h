// The scheduler's deterministic state machine: programs, enterprises,
// providers, clusters, applications, vouchers, allocations, tokens and the
// ledger, changed only by applying commands.
//
// A thin layer over its components, each owning its part of the state:
// Books (ledger, posting), Registry (programs, enterprises, providers,
// clusters, tokens, settlement), VoucherBook (applications, issue, caps,
// expiry), Placement (options, holds, queue, allocation lifecycle) and
// UsageCharging. StateMachine checks time and idempotency, dispatches each
// command to its component, and sequences the few commands that span two
// (a voucher's end ends its allocations; new capacity runs the queue).
//
// Determinism: Apply() never reads the clock, a random source or the disk;
// a command carries its time. Applying the same accepted commands to a fresh
// StateMachine rebuilds the same state and the same journal, hashes
// included.
//
// Atomicity: a command that is rejected returns a precise absl::Status and
// changes nothing (handlers validate everything before their first
// mutation). A command that is accepted may still change nothing (a retried
// request, a tick with nothing due); Outcome::changed says so, and only
// commands that changed something need to be logged.
//
// Not thread-safe: one writer applies commands; readers must be excluded
// while it does (see scheduler/engine/writer.h).
#ifndef COMPUTEVOUCHER_SCHEDULER_CORE_STATE_MACHINE_H_
#define COMPUTEVOUCHER_SCHEDULER_CORE_STATE_MACHINE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "computevoucher/v1/admin.pb.h"
#include "computevoucher/v1/agent.pb.h"
#include "computevoucher/v1/enterprise.pb.h"
#include "computevoucher/v1/journal.pb.h"
#include "computevoucher/v1/snapshot.pb.h"
#include "computevoucher/v1/types.pb.h"
#include "google/protobuf/message.h"
#include "scheduler/core/books.h"
#include "scheduler/core/ledger.h"
#include "scheduler/core/limits.h"
#include "scheduler/core/placement.h"
#include "scheduler/core/records.h"
#include "scheduler/core/registry.h"
#include "scheduler/core/response.h"
#include "scheduler/core/usage_charging.h"
#include "scheduler/core/voucher_book.h"

namespace computevoucher::core {

namespace pb = ::computevoucher::v1;

// `m` serialized with map entries in key order: equal messages give equal
// bytes, for digests and snapshots.
std::string Deterministic(const google::protobuf::Message& m);

// The result of one accepted command.
struct Outcome {
  // The answer for the client: the response message of the RPC the
  // command came from (Program, Voucher, ReportUsageResponse, ...).
  std::shared_ptr<const google::protobuf::Message> response;
  // False when the command changed nothing and need not be logged.
  bool changed = false;
};

class StateMachine {
 public:
  using VoucherRec = core::VoucherRec;
  using AllocationRec = core::AllocationRec;
  using ClusterRec = core::ClusterRec;
  using ProgramTotals = core::ProgramTotals;

  StateMachine() = default;
  StateMachine(const StateMachine&) = delete;
  StateMachine& operator=(const StateMachine&) = delete;

  // Applies `command` at `command.time()`, which must not be earlier than
  // the previous accepted command's. A retried (principal, request_id)
  // returns the first answer without a second effect; the same id with a
  // different request is InvalidArgument. Request ids are remembered for
  // kRequestIdRetention after the command that used them; only commands
  // that change something forget older ones, so that the state stays a
  // function of the logged commands. Errors: InvalidArgument (bad
  // field), NotFound, FailedPrecondition (state forbids it),
  // AlreadyExists, PermissionDenied (the wrong role; another enterprise's
  // object is NotFound, as a missing one), ResourceExhausted (no capacity
  // and not queueing), OutOfRange (arithmetic overflow), Internal (a broken
  // invariant: the caller must stop). On error nothing changed.
  absl::StatusOr<Outcome> Apply(const pb::Command& command);

  // See Ledger::set_known_hashes: for a replay, around Apply.
  void set_known_hashes(KnownHashes* known) {
    books_.ledger().set_known_hashes(known);
  }

  // Journal entries posted since the previous call, in order.
  std::vector<pb::JournalEntry> TakeJournal() {
    return books_.ledger().TakePosted();
  }

  // Usage records accepted since the previous call, in order, with what
  // each was charged.
  std::vector<pb::ChargedUsage> TakeUsage() {
    return usage_charging_.TakeUsage();
  }

  // The final views of the allocations retired since the previous call
  // (Placement::RetireDue), in order.
  std::vector<pb::Allocation> TakeRetired() {
    return placement_.TakeRetired();
  }
  // The final views of the vouchers retired since the previous call
  // (VoucherBook::RetireDue), in order.
  std::vector<pb::Voucher> TakeRetiredVouchers() {
    return voucher_book_.TakeRetired();
  }
  // Discards what the Take* calls above would return, for a state whose
  // outputs nobody stores (the snapshotter's shadow, benchmarks), so that
  // they do not pile up.
  void DropOutputs() {
    TakeJournal();
    TakeUsage();
    TakeRetired();
    TakeRetiredVouchers();
  }

  // --- Reads. Views fill in the derived balances. ---
  const Ledger& ledger() const { return books_.ledger(); }
  absl::Time now() const { return books_.now(); }
  int64_t last_command_sequence() const { return last_command_sequence_; }
  // The last archive anchored (ArchiveCommand); unset before the first.
  const pb::ArchiveCommand& last_archive() const { return last_archive_; }

  const absl::btree_map<std::string, pb::Program>& programs() const {
    return registry_.state().programs;
  }
  const absl::btree_map<std::string, pb::Enterprise>& enterprises() const {
    return registry_.state().enterprises;
  }
  const pb::Enterprise* EnterpriseByCreditCode(const std::string& code) const {
    return registry_.EnterpriseByCreditCode(code);
  }
  const absl::btree_map<std::string, pb::Provider>& providers() const {
    return registry_.state().providers;
  }
  const absl::btree_map<std::string, pb::Application>& applications() const {
    return voucher_book_.state().applications;
  }
  const absl::btree_map<std::string, pb::Token>& tokens() const {
    return registry_.state().tokens;
  }
  // The token whose secret hashes to `secret_sha256`, or nullptr.
  const pb::Token* FindTokenByHash(const std::string& secret_sha256) const {
    return registry_.FindTokenByHash(secret_sha256);
  }

  std::vector<std::string> ClusterIds() const { return registry_.ClusterIds(); }
  // Allocations placed on `cluster_id` and not ended, in id order.
  std::vector<std::string> ActiveAllocationIds(
      const std::string& cluster_id) const {
    return placement_.ActiveAllocationIds(cluster_id);
  }
  // What `cluster_id`'s agent should run now: the full desired set.
  pb::HeartbeatResponse DesiredState(const std::string& cluster_id) const {
    return placement_.DesiredState(cluster_id);
  }
  std::vector<std::string> VoucherIds() const {
    return voucher_book_.VoucherIds();
  }
  std::vector<std::string> AllocationIds() const {
    return placement_.AllocationIds();
  }

  absl::StatusOr<pb::Program> ProgramView(const std::string& program_id) const {
    return registry_.ProgramView(program_id);
  }
  absl::StatusOr<pb::Provider> ProviderView(
      const std::string& provider_id) const {
    return registry_.ProviderView(provider_id);
  }
  absl::StatusOr<pb::Cluster> ClusterView(const std::string& cluster_id) const {
    return registry_.ClusterView(cluster_id);
  }
  absl::StatusOr<pb::Voucher> VoucherView(const std::string& voucher_id) const {
    return voucher_book_.VoucherView(voucher_id);
  }
  absl::StatusOr<pb::Allocation> AllocationView(
      const std::string& allocation_id) const {
    return placement_.AllocationView(allocation_id);
  }

  // Prices `resources` for `enterprise_id` at the current state without
  // changing anything (EnterpriseService.Quote).
  absl::StatusOr<pb::QuoteResponse> Quote(
      const std::string& enterprise_id,
      const pb::ResourceRequest& resources) const {
    return placement_.Quote(enterprise_id, resources);
  }

  // The subsidy an allocation may be charged at most: its hold at placement
  // plus extensions, for GPUs × its billable life so far.
  absl::StatusOr<int64_t> MaxChargeFen(const std::string& allocation_id) const {
    return usage_charging_.MaxChargeFen(allocation_id);
  }

  // SHA-256 over every piece of state (entities, balances, counters, the
  // journal head) except now(), which every command moves, even one that
  // changes nothing. Equal digests mean equal states; for tests and replay
  // checks.
  std::string Digest() const;

  // The whole state as a snapshot, with its Digest() (snapshot.cc). Equal
  // states save equal snapshots: Deterministic(Save()) is the same bytes.
  pb::StateSnapshot Save() const;
  // Loads `snapshot` into this state machine, which must be fresh.
  // InvalidArgument when the snapshot is malformed, DataLoss when the state
  // loaded does not have the digest the snapshot was saved with;
  // FailedPrecondition when this state machine is not fresh. After an
  // error the state machine must be discarded.
  absl::Status Load(const pb::StateSnapshot& snapshot);

  // The records behind the views, for listing in id order: the vouchers in
  // memory, all but the retired ones, which the store keeps
  // (store::RetiredVouchers).
  const absl::btree_map<std::string, VoucherRec>& vouchers() const {
    return voucher_book_.state().vouchers;
  }
  // What the retired vouchers add up to.
  const absl::btree_map<VoucherBook::RetiredKey, RetiredVoucherSums>&
  retired_vouchers() const {
    return voucher_book_.state().retired;
  }
  // The allocations in memory: all but the retired ones, which the store
  // keeps (store::RetiredRecords).
  const absl::btree_map<std::string, AllocationRec>& allocations() const {
    return placement_.state().allocations;
  }
  // What the retired allocations add up to.
  const absl::btree_map<Placement::RetiredKey, RetiredSums>& retired() const {
    return placement_.state().retired;
  }
  const absl::btree_map<std::string, ClusterRec>& clusters() const {
    return registry_.state().clusters;
  }
  pb::Voucher VoucherViewOf(const VoucherRec& rec) const {
    return voucher_book_.VoucherViewOf(rec);
  }
  pb::Allocation AllocationViewOf(const AllocationRec& rec) const {
    return placement_.AllocationViewOf(rec);
  }
  pb::Cluster ClusterViewOf(const ClusterRec& rec) const {
    return registry_.ClusterViewOf(rec);
  }

  // The components, for reads.
  const Registry& registry() const { return registry_; }
  const VoucherBook& voucher_book() const { return voucher_book_; }
  const Placement& placement() const { return placement_; }

 private:
  struct IdempotencyRec {
    std::string fingerprint;
    std::shared_ptr<const google::protobuf::Message> response;
    absl::Time at;  // of the command that used the request id
  };
  // Forgets the request ids used kRequestIdRetention or longer before now.
  void ForgetOldRequestIds();

  // Dispatch: commands of two components, then those of one.
  absl::StatusOr<Reply> Dispatch(const pb::Command& c);
  absl::StatusOr<Response> DispatchToComponent(const pb::Command& c);

  // Commands that span components.
  absl::StatusOr<Reply> SetClusterState(const pb::SetClusterStateRequest& r);
  absl::StatusOr<Reply> RegisterCluster(const pb::Principal& p,
                                        const pb::RegisterRequest& r);
  absl::StatusOr<Response> SuspendVoucher(const pb::SuspendVoucherRequest& r);
  absl::StatusOr<Response> RevokeVoucher(const pb::RevokeVoucherRequest& r);
  absl::StatusOr<Reply> Tick(const pb::TickCommand& r);
  absl::StatusOr<Reply> Archive(const pb::Command& c);
  // Expires the vouchers whose window has ended; whether any was due.
  absl::StatusOr<bool> ExpireVouchers();

  // Declared in dependency order: each component refers to those above it.
  Books books_;
  Registry registry_{books_};
  VoucherBook voucher_book_{registry_, books_};
  Placement placement_{registry_, voucher_book_, books_};
  UsageCharging usage_charging_{placement_, voucher_book_, books_};

  int64_t last_command_sequence_ = 0;
  pb::ArchiveCommand last_archive_;
  absl::flat_hash_map<std::string, IdempotencyRec> idempotency_;
  // The keys of idempotency_ by the time they were used.
  absl::btree_set<std::pair<absl::Time, std::string>> idempotency_by_time_;
};

}  // namespace computevoucher::core

#endif  // COMPUTEVOUCHER_SCHEDULER_CORE_STATE_MACHINE_H_
