// The records the state machine's components keep, behind the views that
// fill in derived balances.
#ifndef COMPUTEVOUCHER_SCHEDULER_CORE_RECORDS_H_
#define COMPUTEVOUCHER_SCHEDULER_CORE_RECORDS_H_

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "computevoucher/v1/types.pb.h"

namespace computevoucher::core {

namespace pb = ::computevoucher::v1;

struct VoucherRec {
  pb::Voucher voucher;  // face value, held, charged, returned kept current
  int64_t adjustments = 0;
};

// Per-program sums kept current by Books::Post().
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

// What retired allocations (no longer in the state) add up to.
struct RetiredSums {
  int64_t allocations = 0;
  int64_t used_gpu_ms = 0;
  int64_t cost_fen = 0;
  int64_t charged_fen = 0;
};

// What retired vouchers (no longer in the state) add up to.
struct RetiredVoucherSums {
  int64_t vouchers = 0;
  int64_t face_value_fen = 0;
  int64_t charged_fen = 0;
  int64_t returned_fen = 0;
};

struct ClusterRec {
  pb::Cluster cluster;
  absl::flat_hash_map<std::string, int32_t> used_gpus;  // by model
};

// Whether `a` holds GPUs on a cluster (assigned or running).
inline bool IsActive(const pb::Allocation& a) {
  return a.state() == pb::ALLOCATION_STATE_ASSIGNED ||
         a.state() == pb::ALLOCATION_STATE_RUNNING;
}

// The next id of a kind: `prefix`-`*counter + 1`, zero-padded to `width`
// digits; advances `*counter`.
inline std::string NextId(const char* prefix, int64_t* counter, int width) {
  ++*counter;
  return absl::StrFormat("%s-%0*d", prefix, width, *counter);
}

}  // namespace computevoucher::core

#endif  // COMPUTEVOUCHER_SCHEDULER_CORE_RECORDS_H_
