#include "agent/meter.h"

#include <algorithm>

#include "common/time_util.h"

namespace computevoucher::agent {

void UsageMeter::StartNoEarlierThan(absl::Time at) {
  interval_start_ = std::max(interval_start_, at);
}

std::optional<int32_t> UsageMeter::AddReadings(
    const std::vector<int>& gpu_indices,
    const absl::flat_hash_map<int, GpuReading>& readings) {
  int64_t util_bp = 0;
  int counted = 0;
  for (int index : gpu_indices) {
    auto it = readings.find(index);
    if (it == readings.end()) continue;
    const GpuReading& g = it->second;
    util_bp += g.utilization_bp;
    ++counted;
    if (!g.energy_supported) continue;
    auto [last, fresh] = energy_last_.emplace(index, g.energy_mj);
    if (!fresh && g.energy_mj >= last->second) {
      energy_mj_ += static_cast<int64_t>(g.energy_mj - last->second);
    }
    last->second = g.energy_mj;
  }
  if (counted == 0) return std::nullopt;
  util_bp /= counted;
  util_sum_bp_ += util_bp;
  ++util_samples_;
  last_util_bp_ = static_cast<int32_t>(util_bp);
  return last_util_bp_;
}

std::optional<pb::UsageRecord> UsageMeter::Record(
    const std::string& allocation_id, int64_t sequence, int32_t gpu_count,
    absl::Time end, const std::string& evidence) const {
  if (end <= interval_start_) return std::nullopt;
  pb::UsageRecord u;
  u.set_allocation_id(allocation_id);
  u.set_sequence(sequence);
  *u.mutable_start() = ToProto(interval_start_);
  *u.mutable_end() = ToProto(end);
  u.set_gpu_ms(absl::ToInt64Milliseconds(end - interval_start_) * gpu_count);
  u.set_mean_utilization_bp(static_cast<int32_t>(
      util_samples_ > 0 ? util_sum_bp_ / util_samples_ : last_util_bp_));
  u.set_energy_mj(energy_mj_);
  u.set_evidence(evidence);
  return u;
}

void UsageMeter::Advance(absl::Time end) {
  interval_start_ = end;
  util_sum_bp_ = 0;
  util_samples_ = 0;
  energy_mj_ = 0;
}

IdleTracker::Change IdleTracker::Observe(bool idle_now, absl::Time now) {
  if (!idle_now) {
    idle_since_.reset();
    if (!idle_) return Change::kNone;
    idle_ = false;
    return Change::kBusyAgain;
  }
  if (!idle_since_) idle_since_ = now;
  if (idle_ || now - *idle_since_ < after_) return Change::kNone;
  idle_ = true;
  return Change::kBecameIdle;
}

}  // namespace computevoucher::agent
