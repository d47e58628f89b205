// The scheduler's deterministic state machine: programs, enterprises,
// providers, clusters, applications, vouchers, allocations, tokens and the
// ledger, changed only by applying commands.
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
// while it does (see scheduler/store/writer.h).
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
#include "computevoucher/v1/types.pb.h"
#include "google/protobuf/message.h"
#include "scheduler/core/ledger.h"

namespace computevoucher::core {

namespace pb = ::computevoucher::v1;

// How far past the scheduler's clock a usage record may claim to end (agent
// clocks drift); the part after the scheduler's now is never subsidised.
inline constexpr absl::Duration kUsageClockSkew = absl::Minutes(5);

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
  StateMachine() = default;
  StateMachine(const StateMachine&) = delete;
  StateMachine& operator=(const StateMachine&) = delete;

  // Applies `command` at `command.time()`, which must not be earlier than
  // the previous accepted command's. A retried (principal, request_id)
  // returns the first answer without a second effect; the same id with a
  // different request is InvalidArgument. Errors: InvalidArgument (bad
  // field), NotFound, FailedPrecondition (state forbids it),
  // AlreadyExists, PermissionDenied (the wrong role; another enterprise's
  // object is NotFound, as a missing one), ResourceExhausted (no capacity and not queueing), OutOfRange
  // (arithmetic overflow), Internal (a broken invariant: the caller must
  // stop). On error nothing changed.
  absl::StatusOr<Outcome> Apply(const pb::Command& command);

  // Journal entries posted since the previous call, in order.
  std::vector<pb::JournalEntry> TakeJournal() { return ledger_.TakePosted(); }

  // Usage records accepted since the previous call, in order, with what
  // each was charged.
  std::vector<pb::ChargedUsage> TakeUsage() {
    return std::exchange(usage_, {});
  }

  // --- Reads. Views fill in the derived balances. ---
  const Ledger& ledger() const { return ledger_; }
  absl::Time now() const { return now_; }
  int64_t last_command_sequence() const { return last_command_sequence_; }

  const absl::btree_map<std::string, pb::Program>& programs() const {
    return programs_;
  }
  const absl::btree_map<std::string, pb::Enterprise>& enterprises() const {
    return enterprises_;
  }
  const absl::btree_map<std::string, pb::Provider>& providers() const {
    return providers_;
  }
  const absl::btree_map<std::string, pb::Application>& applications() const {
    return applications_;
  }
  const absl::btree_map<std::string, pb::Token>& tokens() const {
    return tokens_;
  }
  // The token whose secret hashes to `secret_sha256`, or nullptr.
  const pb::Token* FindTokenByHash(const std::string& secret_sha256) const;

  std::vector<std::string> ClusterIds() const;
  // Allocations placed on `cluster_id` and not ended, in id order.
  std::vector<std::string> ActiveAllocationIds(
      const std::string& cluster_id) const;
  // What `cluster_id`'s agent should run now: the full desired set.
  pb::HeartbeatResponse DesiredState(const std::string& cluster_id) const;
  std::vector<std::string> VoucherIds() const;
  std::vector<std::string> AllocationIds() const;

  absl::StatusOr<pb::Program> ProgramView(const std::string& program_id) const;
  absl::StatusOr<pb::Provider> ProviderView(
      const std::string& provider_id) const;
  absl::StatusOr<pb::Cluster> ClusterView(const std::string& cluster_id) const;
  absl::StatusOr<pb::Voucher> VoucherView(const std::string& voucher_id) const;
  absl::StatusOr<pb::Allocation> AllocationView(
      const std::string& allocation_id) const;

  // Prices `resources` for `enterprise_id` at the current state without
  // changing anything (EnterpriseService.Quote).
  absl::StatusOr<pb::QuoteResponse> Quote(
      const std::string& enterprise_id,
      const pb::ResourceRequest& resources) const;

  // The subsidy an allocation may be charged at most: its hold at placement
  // plus extensions, for GPUs × its billable life so far.
  absl::StatusOr<int64_t> MaxChargeFen(const std::string& allocation_id) const;

  // SHA-256 over every piece of state (entities, balances, counters, the
  // journal head) except now(), which every command moves, even one that
  // changes nothing. Equal digests mean equal states; for tests and replay
  // checks.
  std::string Digest() const;

  // The records behind the views, for listing in id order.
  struct VoucherRec {
    pb::Voucher voucher;  // face value, held, charged, returned kept current
    int64_t adjustments = 0;
  };
  // Per-program sums kept current by Post().
  struct ProgramTotals {
    int64_t issued_fen = 0;
    int64_t held_fen = 0;
    int64_t charged_fen = 0;
    int64_t returned_fen = 0;
  };
  struct AllocationRec {
    pb::Allocation allocation;
    int64_t subsidised_gpu_ms = 0;  // usage that counted toward charges
    absl::Time last_usage_end = absl::InfinitePast();
    int64_t extensions = 0;
    int64_t queue_order = 0;     // creation order, for the queue's age rule
    bool hold_released = false;  // final release done; later usage unsubsidised
  };
  struct ClusterRec {
    pb::Cluster cluster;
    absl::flat_hash_map<std::string, int32_t> used_gpus;  // by model
  };
  const absl::btree_map<std::string, VoucherRec>& vouchers() const {
    return vouchers_;
  }
  const absl::btree_map<std::string, AllocationRec>& allocations() const {
    return allocations_;
  }
  const absl::btree_map<std::string, ClusterRec>& clusters() const {
    return clusters_;
  }
  pb::Voucher VoucherViewOf(const VoucherRec& rec) const;
  pb::Allocation AllocationViewOf(const AllocationRec& rec) const;
  pb::Cluster ClusterViewOf(const ClusterRec& rec) const;

 private:
  struct IdempotencyRec {
    std::string fingerprint;
    std::shared_ptr<const google::protobuf::Message> response;
  };
  // One way an allocation could be served.
  struct Option {
    std::string cluster_id;
    std::string provider_id;
    std::string model;
    pb::HardwareClass hardware_class = pb::HARDWARE_CLASS_UNSPECIFIED;
    int64_t price_fen_per_gpu_hour = 0;
    int32_t free_gpus = 0;
  };
  // What Allocate would do; computed by PlanAllocation, used by Quote too.
  struct Plan {
    std::vector<Option> options;          // every cluster that could serve it
    std::optional<Option> placement;      // where it would run now
    const VoucherRec* voucher = nullptr;  // who pays; null if none can
    int64_t hold_fen = 0;                 // for `voucher`
    int32_t ratio_bp = 0;
    int64_t price_fen_per_gpu_hour = 0;
    pb::HardwareClass hardware_class = pb::HARDWARE_CLASS_UNSPECIFIED;
    pb::Amounts amounts;
    std::vector<pb::VoucherOption> voucher_options;
  };
  using Response = std::shared_ptr<const google::protobuf::Message>;

  // Dispatch.
  absl::StatusOr<Response> Dispatch(const pb::Command& c);

  // Administration (state_machine_admin.cc).
  absl::StatusOr<Response> BootstrapAdmin(const pb::BootstrapAdminCommand& r);
  absl::StatusOr<Response> CreateToken(const pb::CreateTokenCommand& r);
  absl::StatusOr<Response> RevokeToken(const pb::RevokeTokenRequest& r);
  absl::StatusOr<Response> CreateProgram(const pb::CreateProgramRequest& r);
  absl::StatusOr<Response> RegisterEnterprise(
      const pb::RegisterEnterpriseRequest& r);
  absl::StatusOr<Response> SetRelatedProviders(
      const pb::SetRelatedProvidersRequest& r);
  absl::StatusOr<Response> RegisterProvider(
      const pb::RegisterProviderRequest& r);
  absl::StatusOr<Response> SetClusterState(const pb::SetClusterStateRequest& r);
  absl::StatusOr<Response> ApplyForVoucher(const pb::Principal& p,
                                           const pb::ApplyRequest& r);
  absl::StatusOr<Response> ApproveApplication(
      const pb::ApproveApplicationRequest& r);
  absl::StatusOr<Response> RejectApplication(
      const pb::RejectApplicationRequest& r);
  absl::StatusOr<Response> IssueVoucher(const pb::IssueVoucherRequest& r);
  absl::StatusOr<Response> BatchIssueVouchers(
      const pb::BatchIssueVouchersRequest& r);
  absl::StatusOr<Response> SuspendVoucher(const pb::SuspendVoucherRequest& r);
  absl::StatusOr<Response> ResumeVoucher(const pb::ResumeVoucherRequest& r);
  absl::StatusOr<Response> RevokeVoucher(const pb::RevokeVoucherRequest& r);
  absl::StatusOr<Response> AdjustVoucher(const pb::AdjustVoucherRequest& r);
  absl::StatusOr<Response> SettleProvider(const pb::SettleProviderRequest& r);

  // Allocations and clusters (state_machine_alloc.cc).
  absl::StatusOr<Response> RegisterCluster(const pb::Principal& p,
                                           const pb::RegisterRequest& r);
  absl::StatusOr<Response> Allocate(const pb::Principal& p,
                                    const std::string& request_id,
                                    const pb::AllocateRequest& r);
  absl::StatusOr<Response> ReleaseAllocation(
      const pb::Principal& p, const pb::ReleaseAllocationRequest& r);
  absl::StatusOr<Response> ExtendAllocation(
      const pb::Principal& p, const pb::ExtendAllocationRequest& r);
  absl::StatusOr<Response> ReportUsage(const pb::Principal& p,
                                       const pb::ReportUsageRequest& r);
  absl::StatusOr<Response> Heartbeat(const pb::Principal& p,
                                     const pb::HeartbeatRequest& r);
  absl::StatusOr<Response> ClusterLost(const pb::ClusterLostCommand& r);
  absl::StatusOr<Response> Tick(const pb::TickCommand& r);

  // Voucher issue shared by IssueVoucher, BatchIssueVouchers and
  // ApproveApplication. `pending` is face value already planned in the same
  // command per (program, enterprise, year) and per program.
  struct IssuePlan {
    const pb::Program* program;
    std::string enterprise_id;
    int64_t face_value_fen;
    absl::Time valid_from;
    absl::Time valid_until;
    int32_t priority;
  };
  struct PendingIssue {
    absl::flat_hash_map<std::string, int64_t> by_program;
    absl::flat_hash_map<std::string, int64_t> by_cap_key;
  };
  absl::StatusOr<IssuePlan> PlanIssue(const pb::IssueVoucherRequest& r,
                                      PendingIssue* pending) const;
  absl::StatusOr<pb::Voucher> ExecuteIssue(const IssuePlan& plan,
                                           const std::string& application_id);
  absl::Status CheckCap(const pb::Program& program,
                        const std::string& enterprise_id, int year,
                        int64_t amount, int64_t already_pending) const;
  int64_t IssuedInYear(const std::string& program_id,
                       const std::string& enterprise_id, int year) const;

  // Helpers.
  absl::Status CheckRelatedProviders(
      const google::protobuf::RepeatedPtrField<std::string>& ids) const;
  absl::Status CheckEligible(const pb::Program& program,
                             const pb::Enterprise& enterprise) const;
  absl::StatusOr<pb::Application*> FindPendingApplication(
      const std::string& application_id);
  absl::StatusOr<Plan> PlanAllocation(const std::string& enterprise_id,
                                      const pb::ResourceRequest& r) const;
  std::vector<Option> Options(const pb::Enterprise& enterprise,
                              const pb::ResourceRequest& r) const;
  absl::StatusOr<int64_t> HoldFor(const Option& option,
                                  const pb::Program& program, bool sme,
                                  int32_t gpu_count, int64_t duration_s) const;
  static pb::JournalEntry Entry(pb::EntryKind kind, std::string debit,
                                std::string credit, int64_t amount,
                                std::string key);
  // An entry about `allocation`, its voucher, program and provider.
  static pb::JournalEntry AllocationEntry(pb::EntryKind kind, std::string debit,
                                          std::string credit, int64_t amount,
                                          std::string key,
                                          const pb::Allocation& allocation);
  // Posts `entry` at now_ and keeps the voucher, allocation and program sums
  // current. Internal error on a broken invariant.
  absl::Status Post(pb::JournalEntry entry);
  absl::Status Place(AllocationRec& rec, const Option& option);
  absl::Status EndAllocation(AllocationRec& rec, pb::EndReason reason);
  absl::Status ReleaseHold(AllocationRec& rec, int64_t amount,
                           const std::string& key);
  absl::Status EndVoucherAllocations(const std::string& voucher_id,
                                     pb::EndReason reason);
  absl::Status ReturnToBudget(VoucherRec& rec, pb::EntryKind kind,
                              int64_t amount, const std::string& key);
  absl::Status ProcessQueue();
  void UpdateExhausted(VoucherRec& rec);
  // Decides one record. Sets *consumed when a refused record used up its
  // sequence number (a change of state, like an accepted one).
  absl::StatusOr<pb::UsageAck> ChargeRecord(const pb::Principal& p,
                                            const pb::UsageRecord& record,
                                            bool* consumed);
  std::string NextId(const char* prefix, int64_t* counter, int width);
  int64_t EnterpriseGpusInUse(const std::string& enterprise_id) const;
  absl::Time BillableEnd(const AllocationRec& rec) const;
  absl::StatusOr<const pb::Enterprise*> FindEnterprise(
      const std::string& field, const std::string& id) const;
  absl::StatusOr<VoucherRec*> FindVoucher(const std::string& id);
  absl::StatusOr<AllocationRec*> FindOwnAllocation(const pb::Principal& p,
                                                   const std::string& id);

  Ledger ledger_;
  absl::Time now_ = absl::InfinitePast();
  int64_t last_command_sequence_ = 0;
  int64_t current_command_sequence_ = 0;

  absl::btree_map<std::string, pb::Program> programs_;
  absl::btree_map<std::string, pb::Enterprise> enterprises_;
  absl::btree_map<std::string, pb::Provider> providers_;
  absl::btree_map<std::string, ClusterRec> clusters_;
  absl::btree_map<std::string, pb::Application> applications_;
  absl::btree_map<std::string, VoucherRec> vouchers_;
  absl::btree_map<std::string, AllocationRec> allocations_;
  absl::btree_map<std::string, pb::Token> tokens_;

  // Indexes, derived from the entities above.
  absl::flat_hash_map<std::string, std::string> credit_codes_;  // code -> id
  absl::flat_hash_map<std::string, std::string> token_hashes_;  // hash -> id
  absl::flat_hash_map<std::string, std::string>
      cluster_owner_;  // cluster -> provider
  absl::flat_hash_map<std::string, std::vector<std::string>>
      enterprise_vouchers_;
  absl::flat_hash_map<std::string, std::vector<std::string>>
      voucher_allocations_;
  // Active or suspended vouchers by expiry.
  absl::btree_set<std::pair<absl::Time, std::string>> expiry_index_;
  // Assigned or running allocations by deadline.
  absl::btree_set<std::pair<absl::Time, std::string>> deadline_index_;
  // Ended allocations whose hold is not yet released, by end time.
  absl::btree_set<std::pair<absl::Time, std::string>> release_index_;
  // Assigned or running allocations by cluster.
  absl::flat_hash_map<std::string, absl::btree_set<std::string>>
      cluster_allocations_;
  // Pending allocations by queue order.
  absl::btree_set<std::pair<int64_t, std::string>> queue_;
  absl::flat_hash_map<std::string, IdempotencyRec> idempotency_;
  absl::flat_hash_map<std::string, ProgramTotals> program_totals_;
  absl::flat_hash_map<std::string, int64_t> enterprise_gpus_;  // in use now

  std::vector<pb::ChargedUsage> usage_;

  // Set by a handler that accepted its command without changing anything.
  bool unchanged_ = false;

  int64_t next_program_ = 0;
  int64_t next_enterprise_ = 0;
  int64_t next_provider_ = 0;
  int64_t next_application_ = 0;
  int64_t next_voucher_ = 0;
  int64_t next_allocation_ = 0;
  int64_t next_token_ = 0;
  int64_t next_settlement_ = 0;
};

}  // namespace computevoucher::core

#endif  // COMPUTEVOUCHER_SCHEDULER_CORE_STATE_MACHINE_H_
