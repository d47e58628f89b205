#include "scheduler/api/liveness.h"

#include <algorithm>

namespace computevoucher::api {

void Liveness::Restart(absl::Time start) {
  absl::MutexLock lock(&mu_);
  start_ = start;
  last_.clear();
}

void Liveness::Beat(const std::string& cluster_id, absl::Time at) {
  absl::MutexLock lock(&mu_);
  absl::Time& last = last_[cluster_id];
  last = std::max(last, at);
}

absl::Time Liveness::LastBeat(const std::string& cluster_id) const {
  absl::MutexLock lock(&mu_);
  auto it = last_.find(cluster_id);
  return it == last_.end() ? absl::InfinitePast() : it->second;
}

bool Liveness::Connected(const std::string& cluster_id, absl::Time now,
                         absl::Duration silence) const {
  absl::MutexLock lock(&mu_);
  auto it = last_.find(cluster_id);
  const absl::Time last =
      it == last_.end() ? start_ : std::max(it->second, start_);
  return now - last <= silence;
}

}  // namespace computevoucher::api
