// What the agent meters of one allocation between two usage records: the
// open interval and the GPUs' readings over it (UsageMeter), and whether
// its GPUs sit idle (IdleTracker). Pure bookkeeping: no clock, no I/O; the
// reconciler (agent/agent.h) feeds them samples and spools the records.
//
// Thread-compatible.
#ifndef COMPUTEVOUCHER_AGENT_METER_H_
#define COMPUTEVOUCHER_AGENT_METER_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "agent/gpu_reading.h"
#include "computevoucher/v1/types.pb.h"

namespace computevoucher::agent {

namespace pb = ::computevoucher::v1;

class UsageMeter {
 public:
  // Metering resumes at `interval_start` (the spool cursor's resume_at).
  explicit UsageMeter(absl::Time interval_start)
      : interval_start_(interval_start) {}

  absl::Time interval_start() const { return interval_start_; }

  // The runtime gave the GPUs at `at` (a Slurm job's StartTime): the open
  // interval starts no earlier. What is already spooled stays final.
  void StartNoEarlierThan(absl::Time at);

  // Adds one reading of the allocation's GPUs (`readings` by GPU index;
  // GPUs missing from it are skipped). Energy counts the growth of each
  // GPU's counter since the previous reading of it; a counter that went
  // back (a driver reload) adds nothing. Returns the mean utilisation of
  // the GPUs read, in basis points; nullopt when none was.
  std::optional<int32_t> AddReadings(
      const std::vector<int>& gpu_indices,
      const absl::flat_hash_map<int, GpuReading>& readings);

  // The record of [interval_start, end) for `gpu_count` GPUs: GPU-ms, mean
  // utilisation (the last sample's when none fell in the interval), energy
  // and `evidence`; nullopt when the interval is empty. The interval stays
  // open until Advance.
  std::optional<pb::UsageRecord> Record(const std::string& allocation_id,
                                        int64_t sequence, int32_t gpu_count,
                                        absl::Time end,
                                        const std::string& evidence) const;

  // The record ending at `end` is durable: the next interval starts there,
  // with its readings afresh.
  void Advance(absl::Time end);

 private:
  absl::Time interval_start_;
  int64_t util_sum_bp_ = 0;
  int64_t util_samples_ = 0;
  // The last sample's utilisation, for a record too short to hold one.
  int32_t last_util_bp_ = 0;
  int64_t energy_mj_ = 0;
  std::map<int, uint64_t> energy_last_;
};

// Whether an allocation's GPUs have been idle for `after`: idle as soon as
// every observation in that span said so, busy again at the first that
// does not.
class IdleTracker {
 public:
  explicit IdleTracker(absl::Duration after) : after_(after) {}

  enum class Change { kNone, kBecameIdle, kBusyAgain };
  // One observation at `now`.
  Change Observe(bool idle_now, absl::Time now);
  bool idle() const { return idle_; }

 private:
  const absl::Duration after_;
  std::optional<absl::Time> idle_since_;
  bool idle_ = false;
};

}  // namespace computevoucher::agent

#endif  // COMPUTEVOUCHER_AGENT_METER_H_
