// Which scheduler replica writes, and the writer while this one does.
//
// Every scheduler runs as a replica of its store. With the embedded store a
// replica is alone (the data directory's lock sees to that) and leads from
// its start to its stop. With PostgreSQL several replicas may share one
// database. Each campaigns for the lease every lease/4 on a thread of its
// own. A follower refuses calls, naming the leader, and keeps a standby
// copy of the state up to date by replaying the journal as the leader
// appends to it (on a second thread), so that when it wins the lease it
// only replays the tail before it serves. A leader that cannot renew steps
// down before its lease can expire by its own clock, and the store refuses
// the appends of a leader whose lease another replica has taken
// (Store::Campaign), so a paused leader that wakes up late never commits.
#ifndef COMPUTEVOUCHER_SCHEDULER_ENGINE_REPLICA_H_
#define COMPUTEVOUCHER_SCHEDULER_ENGINE_REPLICA_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "scheduler/core/state_machine.h"
#include "scheduler/engine/replay.h"
#include "scheduler/engine/writer.h"
#include "scheduler/store/store.h"

namespace computevoucher::engine {

namespace pb = ::computevoucher::v1;

struct ReplicaOptions {
  // How long a lease lasts unrenewed. A follower takes over at most
  // lease * 5/4 after the leader's last renewal, plus the time it takes to
  // replay what its standby state has not caught up with.
  absl::Duration lease = absl::Seconds(5);
  WriterOptions writer;
  // Runs each time this replica starts leading, after the state is caught
  // up and before any call reaches the writer (the first admin token,
  // fresh liveness). An error steps down again.
  std::function<absl::Status(Writer&)> on_lead;
  // Runs after every change between leading and following.
  std::function<void(bool leading)> on_change;
};

class Replica {
 public:
  // `store` and `clock` must outlive the replica.
  Replica(store::Store& store, Clock& clock, ReplicaOptions options);
  ~Replica();
  Replica(const Replica&) = delete;
  Replica& operator=(const Replica&) = delete;

  // Campaigns once as a candidate that clients reach at `address`
  // ("host:port"), and when that wins, loads the state and leads before it
  // returns (so a replica alone leads when this returns); then keeps
  // campaigning and following on threads of its own. Errors: the store's,
  // or the state's (DataLoss) when this replica won but the journal breaks
  // an invariant; an unreachable database is not one (the replica follows
  // and retries).
  absl::Status Start(const std::string& address);

  // The writer while this replica leads; Unavailable naming the leader
  // otherwise ("not the leader: ...").
  absl::StatusOr<std::shared_ptr<Writer>> writer() const;
  bool leading() const;
  // Where clients reach the leader ("host:port"); this replica's own
  // address while it leads, empty while no leader is known.
  std::string leader_address() const;

  // Stops campaigning and following, stops the writer (answering the
  // commands queued) and resigns, so that a follower takes over at once.
  // Idempotent.
  void Stop();

 private:
  void CampaignLoop();
  void StandbyLoop();
  // One campaign and what it decides.
  absl::Status CampaignOnce();
  // The lease (fencing token `token`) is ours: catches the standby state
  // up, checks it, and serves it with a writer.
  absl::Status Lead(int64_t token);
  // The lease is no longer surely ours: steps down when leading, and
  // resigns. `planned`: this replica stops while the lease is still its
  // own, and its writer closes with a snapshot at the last command.
  void Lose(const std::string& why, bool planned = false);
  // A fresh standby state replaying from the start of the journal.
  void ResetStandby();

  store::Store& store_;
  Clock& clock_;
  const ReplicaOptions options_;
  // Set once, by Start.
  store::Candidate candidate_;

  mutable absl::Mutex mu_;
  std::shared_ptr<Writer> writer_ ABSL_GUARDED_BY(mu_);
  std::string leader_address_ ABSL_GUARDED_BY(mu_);
  std::string leader_id_ ABSL_GUARDED_BY(mu_);
  // The fencing token of the lease the last campaign won; 0 when it lost.
  int64_t won_token_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  // Owned by the standby thread (and by Start before the threads run).
  std::unique_ptr<core::StateMachine> standby_;
  std::unique_ptr<Replayer> replayer_;
  std::string standby_error_;
  absl::Time standby_since_;
  bool standby_ready_ = false;  // said that it caught up

  // Owned by the campaign thread (and by Start before the threads run).
  absl::Time valid_until_ = absl::InfinitePast();
  std::string campaign_error_;

  std::thread campaigner_;
  std::thread follower_;
  bool stopped_ = false;
};

}  // namespace computevoucher::engine

#endif  // COMPUTEVOUCHER_SCHEDULER_ENGINE_REPLICA_H_
