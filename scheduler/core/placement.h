// Placement: allocations from admission to their end — the ways a request
// could be served (options), pricing and the hold at admission, placement
// on a cluster or in the queue, the queue's order, extension, release, what
// agents report about them (heartbeats) and the loss of a cluster — and
// their retirement, once ended long enough, out of memory into the store.
//
// Holds come off a voucher and go back to it through the voucher book;
// capacity in use is counted on the registry's clusters. Handlers validate
// before their first change: on error nothing changed. Not thread-safe;
// owned by StateMachine.
#ifndef COMPUTEVOUCHER_SCHEDULER_CORE_PLACEMENT_H_
#define COMPUTEVOUCHER_SCHEDULER_CORE_PLACEMENT_H_

#include <cstdint>
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
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "computevoucher/v1/agent.pb.h"
#include "computevoucher/v1/enterprise.pb.h"
#include "computevoucher/v1/snapshot.pb.h"
#include "computevoucher/v1/types.pb.h"
#include "scheduler/core/books.h"
#include "scheduler/core/records.h"
#include "scheduler/core/registry.h"
#include "scheduler/core/response.h"
#include "scheduler/core/voucher_book.h"

namespace computevoucher::core {

// The idempotency keys of every entry that can be posted about allocation
// `id` extended `extensions` times (those of its extensions, its releases,
// and what a revoked or expired voucher passes on from them), so that they
// can be forgotten with it.
std::vector<std::string> AllocationKeys(absl::string_view id,
                                        int64_t extensions);

class Placement {
 public:
  // Program, enterprise, provider (empty: never placed), hardware class.
  using RetiredKey = std::tuple<std::string, std::string, std::string, int>;

  struct State {
    absl::btree_map<std::string, AllocationRec> allocations;
    // Indexes, derived from the allocations.
    absl::flat_hash_map<std::string, std::vector<std::string>>
        voucher_allocations;
    // Assigned or running allocations by deadline.
    absl::btree_set<std::pair<absl::Time, std::string>> deadline_index;
    // Ended allocations whose hold is not yet released, by end time.
    absl::btree_set<std::pair<absl::Time, std::string>> release_index;
    // Assigned or running allocations by cluster.
    absl::flat_hash_map<std::string, absl::btree_set<std::string>>
        cluster_allocations;
    // Ended allocations whose hold was released, by end time: retired in
    // this order.
    absl::btree_set<std::pair<absl::Time, std::string>> retire_index;
    // Pending allocations by queue order.
    absl::btree_set<std::pair<int64_t, std::string>> queue;
    absl::flat_hash_map<std::string, int64_t> enterprise_gpus;  // in use now
    int64_t next_allocation = 0;
    // What the retired allocations add up to, by (program, enterprise,
    // provider, hardware class).
    absl::btree_map<RetiredKey, RetiredSums> retired;
  };

  // One way an allocation could be served. Its strings are the registry's
  // cluster's: valid until a cluster is registered, re-registered with
  // another inventory or loaded (counting GPUs in use leaves them be). An
  // Option lives within one command or read.
  struct Option {
    absl::string_view cluster_id;
    absl::string_view provider_id;
    absl::string_view model;
    pb::HardwareClass hardware_class = pb::HARDWARE_CLASS_UNSPECIFIED;
    int64_t price_fen_per_gpu_hour = 0;
    int32_t free_gpus = 0;
    // GPUs of the model in the cluster.
    int32_t gpu_count = 0;
  };

  Placement(Registry& registry, VoucherBook& vouchers, Books& books)
      : registry_(registry), vouchers_(vouchers), books_(books) {}
  Placement(const Placement&) = delete;
  Placement& operator=(const Placement&) = delete;

  // --- Commands, at books.now(). ---
  // Holds on the first voucher that can pay and places the allocation, or
  // queues it (queue_if_busy). ResourceExhausted when there is no room and
  // it may not queue.
  absl::StatusOr<Response> Allocate(const pb::Principal& p,
                                    const std::string& request_id,
                                    const pb::AllocateRequest& r);
  absl::StatusOr<Response> ReleaseAllocation(
      const pb::Principal& p, const pb::ReleaseAllocationRequest& r);
  absl::StatusOr<Response> ExtendAllocation(
      const pb::Principal& p, const pb::ExtendAllocationRequest& r);
  // Takes what agent `p` observes of its allocations; answers the desired
  // state of its cluster.
  absl::StatusOr<Reply> Heartbeat(const pb::Principal& p,
                                  const pb::HeartbeatRequest& r);
  // Ends every allocation on the lost cluster.
  absl::StatusOr<Reply> ClusterLost(const pb::ClusterLostCommand& r);

  // Every way an allocation of `enterprise` could be served: each model of
  // each approved cluster of a provider unrelated to it, in cluster order.
  std::vector<Option> Eligible(const pb::Enterprise& enterprise) const;

  // What Allocate would do now, without changing anything.
  absl::StatusOr<pb::QuoteResponse> Quote(
      const std::string& enterprise_id,
      const pb::ResourceRequest& resources) const;

  // --- Effects of other commands. ---
  // Places what waits in the queue where it now fits: by voucher priority,
  // then fair share (fewest GPUs in use), then age.
  absl::Status ProcessQueue();
  // Ends every allocation paid by `voucher_id`, then runs the queue.
  absl::Status EndVoucherAllocations(const std::string& voucher_id,
                                     pb::EndReason reason);
  // Ends `rec` (nothing if it has ended): a pending one gives its hold back
  // at once, a placed one frees its GPUs and keeps its hold for late usage.
  absl::Status EndAllocation(AllocationRec& rec, pb::EndReason reason);
  // Ends the allocations whose duration ran out by now; whether any did.
  absl::StatusOr<bool> EndDue();
  // Releases the holds of allocations that ended at least `grace` ago;
  // whether any did.
  absl::StatusOr<bool> ReleaseDueHolds(absl::Duration grace);
  // Retires up to `at_most` allocations that ended at least `retain` ago
  // and whose hold was released, earliest end first: they leave the state
  // (and their hold account, keys and charge mark leave the ledger), their
  // sums go to state().retired and their final views to TakeRetired().
  // Whether any did. Internal on a broken invariant.
  absl::StatusOr<bool> RetireDue(absl::Duration retain, int at_most);
  // The final views of the allocations retired since the previous call, in
  // the order retired.
  std::vector<pb::Allocation> TakeRetired() {
    return std::exchange(retired_, {});
  }
  size_t queued() const { return state_.queue.size(); }

  // --- Lookups and views. ---
  // The allocation `id`, or nullptr.
  AllocationRec* Find(const std::string& id);
  const AllocationRec* Find(const std::string& id) const;
  // Allocations placed on `cluster_id` and not ended, in id order.
  std::vector<std::string> ActiveAllocationIds(
      const std::string& cluster_id) const;
  // What `cluster_id`'s agent should run now: the full desired set.
  pb::HeartbeatResponse DesiredState(const std::string& cluster_id) const;
  std::vector<std::string> AllocationIds() const;
  absl::StatusOr<pb::Allocation> AllocationView(
      const std::string& allocation_id) const;
  pb::Allocation AllocationViewOf(const AllocationRec& rec) const;

  const State& state() const { return state_; }

  // The component as a snapshot, and back into a fresh component
  // (scheduler/core/snapshot.cc).
  void Save(pb::PlacementSnapshot* out) const;
  absl::Status Load(const pb::PlacementSnapshot& in);

 private:
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
  // "2 × H100", "4 × any domestic".
  static std::string Describe(const pb::ResourceRequest& r);
  // Placement preference among options with room: lowest price, then
  // tightest fit (fewest free GPUs, as the GPUs asked for are the same),
  // then id order.
  static bool BetterPlacement(const Option& a, const Option& b);
  absl::StatusOr<Plan> PlanAllocation(const std::string& enterprise_id,
                                      const pb::ResourceRequest& r) const;
  // Adds `rec` as a way to pay to `plan` (the first sufficient one pays);
  // sets *shortfall for the first insufficient one.
  absl::Status AddPayer(const VoucherRec& rec, const pb::Enterprise& enterprise,
                        const pb::ResourceRequest& r, Plan& plan,
                        std::string* shortfall) const;
  // The eligible options that fit `r`.
  std::vector<Option> Options(const pb::Enterprise& enterprise,
                              const pb::ResourceRequest& r) const;
  // The eligible options; only those that fit `*fit` unless it is null.
  std::vector<Option> Collect(const pb::Enterprise& enterprise,
                              const pb::ResourceRequest* fit) const;
  absl::StatusOr<int64_t> HoldFor(const Option& option,
                                  const pb::Program& program, bool sme,
                                  int32_t gpu_count, int64_t duration_s) const;
  absl::Status Place(AllocationRec& rec, const Option& option);
  absl::Status ReleaseHold(AllocationRec& rec, int64_t amount,
                           const std::string& key);
  // Marks `rec`'s hold released for good: no usage is subsidised after,
  // and it is retired in its turn.
  void HoldReleased(AllocationRec& rec);
  // Retires allocation `id` but for the voucher index, which RetireDue
  // updates once for all it retires.
  absl::Status Retire(const std::string& id);
  absl::StatusOr<AllocationRec*> FindOwnAllocation(const pb::Principal& p,
                                                   const std::string& id);
  int64_t EnterpriseGpusInUse(const std::string& enterprise_id) const;

  Registry& registry_;
  VoucherBook& vouchers_;
  Books& books_;
  State state_;
  std::vector<pb::Allocation> retired_;
};

}  // namespace computevoucher::core

#endif  // COMPUTEVOUCHER_SCHEDULER_CORE_PLACEMENT_H_
