#include "scheduler/api/liveness.h"

#include <algorithm>

namespace cv::api {

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
  const absl::Time last = std::max(LastBeat(cluster_id), start_);
  return now - last <= silence;
}

}  // namespace cv::api
