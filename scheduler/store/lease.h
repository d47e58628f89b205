// The leader lease: which of the scheduler replicas sharing one store may
// append to its command log.
#ifndef COMPUTEVOUCHER_SCHEDULER_STORE_LEASE_H_
#define COMPUTEVOUCHER_SCHEDULER_STORE_LEASE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace computevoucher::store {

// How long a read-write open holds the PostgreSQL lease without renewing.
inline constexpr absl::Duration kDefaultLease = absl::Seconds(10);

// A scheduler replica asking to be the one that writes (Lease::Campaign).
struct Candidate {
  std::string id;       // unique to this process: host, pid and a random part
  std::string address;  // where clients reach it, "host:port"
};

// A candidate id unique to this process: "host/pid/random".
std::string NewCandidateId();

// What a campaign found.
struct Leadership {
  // This candidate holds the lease and may append.
  bool leading = false;
  // The current holder's fencing token; every change of holder increments
  // it.
  int64_t fencing_token = 0;
  // The replica holding an unexpired lease, when there is one.
  std::string leader_id;
  std::string leader_address;
  // When leading: how long, counted from when Campaign was called, the
  // lease is certainly still this candidate's. InfiniteDuration for a store
  // only one process can open.
  absl::Duration valid_for = absl::ZeroDuration();
};

class Lease {
 public:
  virtual ~Lease() = default;

  // Takes the writer lease for `candidate` for `lease` (renews it when this
  // store already holds it), unless another replica holds an unexpired one.
  // Appends are then allowed until another replica takes the lease over,
  // which it can only do once this one expired: the store checks, in the
  // same transaction as each append, that the lease is still this store's
  // (its fencing token unchanged), and refuses the append with
  // FailedPrecondition otherwise, so that two replicas never both commit.
  // Winning also rereads the head, which the former leader may have moved.
  // Errors are the store's I/O errors; losing is not an error.
  virtual absl::StatusOr<Leadership> Campaign(const Candidate& candidate,
                                              absl::Duration lease) = 0;

  // Stops appending and, when this store holds the lease, lets it expire
  // now, so that another replica takes over without waiting (a graceful
  // stop). Closing a store resigns too.
  virtual absl::Status Resign() = 0;
};

}  // namespace computevoucher::store

#endif  // COMPUTEVOUCHER_SCHEDULER_STORE_LEASE_H_
