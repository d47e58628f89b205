// When each cluster's agent was last heard from. Heartbeat times are not
// part of the deterministic state (they would make every heartbeat a logged
// command); the scheduler decides from them when a cluster is lost and logs
// that decision as a command instead.
#ifndef COMPUTEVOUCHER_SCHEDULER_API_LIVENESS_H_
#define COMPUTEVOUCHER_SCHEDULER_API_LIVENESS_H_

#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace computevoucher::api {

class Liveness {
 public:
  // Clusters never heard from count as heard at `start` (the scheduler's
  // start), so that a restart gives every agent a full grace period.
  explicit Liveness(absl::Time start) : start_(start) {}

  // Forgets every heartbeat and counts clusters as heard at `start`: a
  // replica that starts leading gives every agent a full grace period.
  void Restart(absl::Time start) ABSL_LOCKS_EXCLUDED(mu_);

  void Beat(const std::string& cluster_id, absl::Time at)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Last heartbeat, or nullopt-like InfinitePast when never heard from.
  absl::Time LastBeat(const std::string& cluster_id) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // Whether `cluster_id` was heard from within `silence` of `now`.
  bool Connected(const std::string& cluster_id, absl::Time now,
                 absl::Duration silence) const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  absl::Time start_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, absl::Time> last_ ABSL_GUARDED_BY(mu_);
};

}  // namespace computevoucher::api

#endif  // COMPUTEVOUCHER_SCHEDULER_API_LIVENESS_H_
