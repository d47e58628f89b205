// Which scheduler replica writes, and the writer while this one does.
//
// Every scheduler runs as a replica of its store. With the embedded store a
// replica is alone (the data directory's lock sees to that) and leads from
// its start to its stop. With PostgreSQL several replicas may share one
// database: each campaigns for the lease every lease/4; the one holding it
// loads the state from the journal into a Writer and serves; the others
// follow, refusing calls and naming the leader. A leader that cannot renew
// steps down before its lease can expire by its own clock, and the store
// refuses the appends of a leader whose lease another replica has taken
// (Store::Campaign), so a paused leader that wakes up late never commits.
#ifndef COMPUTEVOUCHER_SCHEDULER_STORE_REPLICA_H_
#define COMPUTEVOUCHER_SCHEDULER_STORE_REPLICA_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "scheduler/store/store.h"
#include "scheduler/store/writer.h"

namespace cv::store {

struct ReplicaOptions {
  // How long a lease lasts unrenewed. A follower takes over at most
  // lease * 5/4 after the leader's last renewal, plus the time it takes to
  // load the journal.
  absl::Duration lease = absl::Seconds(5);
  WriterOptions writer;
  // Runs on the campaigning thread each time this replica starts leading,
  // after the state is loaded and before any call reaches the writer (the
  // first admin token, fresh liveness). An error steps down again.
  std::function<absl::Status(Writer&)> on_lead;
  // Runs after every change between leading and following.
  std::function<void(bool leading)> on_change;
};

class Replica {
 public:
  // `store` and `clock` must outlive the replica.
  Replica(Store& store, Clock& clock, ReplicaOptions options);
  ~Replica();
  Replica(const Replica&) = delete;
  Replica& operator=(const Replica&) = delete;

  // Campaigns once as a candidate that clients reach at `address`
  // ("host:port"), so that a replica alone leads when this returns, then
  // keeps campaigning on a thread of its own. Errors: the store's, or the
  // state's (DataLoss) when this replica won but could not load it; an
  // unreachable database is not one (the replica follows and retries).
  absl::Status Start(const std::string& address);

  // The writer while this replica leads; Unavailable naming the leader
  // otherwise ("not the leader: ...").
  absl::StatusOr<std::shared_ptr<Writer>> writer() const;
  bool leading() const;
  // Where clients reach the leader ("host:port"); this replica's own
  // address while it leads, empty while no leader is known.
  std::string leader_address() const;

  // Stops campaigning, stops the writer (answering the commands queued) and
  // resigns, so that a follower takes over at once. Idempotent.
  void Stop();

 private:
  void Loop();
  // One campaign and what it decides.
  absl::Status CampaignOnce();
  absl::Status Lead();
  void StepDown(const std::string& why);

  Store& store_;
  Clock& clock_;
  const ReplicaOptions options_;
  // Set once, by Start.
  Candidate candidate_;

  mutable absl::Mutex mu_;
  std::shared_ptr<Writer> writer_ ABSL_GUARDED_BY(mu_);
  std::string leader_address_ ABSL_GUARDED_BY(mu_);
  std::string leader_id_ ABSL_GUARDED_BY(mu_);

  // Owned by the campaigning thread (and Start before it runs).
  absl::Time valid_until_ = absl::InfinitePast();
  std::string last_error_;

  absl::Notification stop_;
  std::thread thread_;
  bool stopped_ = false;
};

}  // namespace cv::store

#endif  // COMPUTEVOUCHER_SCHEDULER_STORE_REPLICA_H_
