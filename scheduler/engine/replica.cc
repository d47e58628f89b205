#include "scheduler/engine/replica.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/thread_name.h"
#include "scheduler/engine/log.h"
#include "scheduler/engine/snapshots.h"

namespace computevoucher::engine {
namespace {

// Commands a follower replays between two looks at whether it leads.
constexpr int64_t kStandbyChunk = 4096;

}  // namespace

Replica::Replica(store::Store& store, Clock& clock, ReplicaOptions options)
    : store_(store), clock_(clock), options_(std::move(options)) {
  candidate_.id = store::NewCandidateId();
}

Replica::~Replica() { Stop(); }

absl::Status Replica::Start(const std::string& address) {
  candidate_.address = address;
  absl::Status first = CampaignOnce();
  // Renewing from now on, also while the state loads below, which can take
  // longer than the lease.
  campaigner_ = StartNamedThread("cv-campaign", [this] { CampaignLoop(); });
  int64_t token;
  {
    absl::MutexLock lock(&mu_);
    token = won_token_;
  }
  if (first.ok() && token != 0) {
    ResetStandby();
    first = Lead(token);
    if (!first.ok()) Lose(absl::StrCat("cannot lead: ", first.message()));
  }
  // An unreachable database may come back: keep following and campaigning.
  // Anything else (a journal that breaks an invariant, a token that cannot
  // be written) would fail again: do not start.
  if (!first.ok() && first.code() != absl::StatusCode::kUnavailable) {
    Stop();
    return first;
  }
  follower_ = StartNamedThread("cv-standby", [this] { StandbyLoop(); });
  return absl::OkStatus();
}

void Replica::CampaignLoop() {
  const absl::Duration period =
      std::max(options_.lease / 4, absl::Milliseconds(10));
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), period)) return;
    }
    CampaignOnce().IgnoreError();
  }
}

absl::Status Replica::CampaignOnce() {
  const absl::Time sent = clock_.Now();
  absl::StatusOr<store::Leadership> won =
      store_.Campaign(candidate_, options_.lease);
  bool holding;
  {
    absl::MutexLock lock(&mu_);
    holding = won_token_ != 0;
  }
  if (!won.ok()) {
    const std::string error(won.status().message());
    if (error != campaign_error_) Log(absl::StrCat("lease: ", error));
    campaign_error_ = error;
    // Give the lease up while it is still surely ours: the next round
    // would come too late.
    if (holding && clock_.Now() + options_.lease / 4 >= valid_until_) {
      Lose(absl::StrCat("cannot renew the lease: ", error));
    }
    return won.status();
  }
  campaign_error_.clear();
  if (!won->leading) {
    if (holding) {
      Lose(absl::StrCat("lost the lease to ", won->leader_id,
                        " (fencing token ", won->fencing_token, ")"));
    }
    absl::MutexLock lock(&mu_);
    if (won->leader_id != leader_id_) {
      Log(won->leader_id.empty()
              ? std::string("following; no leader holds the lease")
              : absl::StrCat("following ", won->leader_id, " at ",
                             won->leader_address, " (fencing token ",
                             won->fencing_token, ")"));
    }
    leader_id_ = won->leader_id;
    leader_address_ = won->leader_address;
    return absl::OkStatus();
  }
  valid_until_ = won->valid_for == absl::InfiniteDuration()
                     ? absl::InfiniteFuture()
                     : sent + won->valid_for;
  absl::MutexLock lock(&mu_);
  // The standby thread notices and takes over (Start does it itself).
  won_token_ = won->fencing_token;
  return absl::OkStatus();
}

void Replica::StandbyLoop() {
  const absl::Duration period =
      std::max(options_.lease / 4, absl::Milliseconds(10));
  bool caught_up = false;
  while (true) {
    int64_t token = 0;
    bool leading;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || (won_token_ != 0 && writer_ == nullptr);
      };
      if (caught_up || writer_ != nullptr) {
        mu_.AwaitWithTimeout(absl::Condition(&ready), period);
      }
      if (stopping_) return;
      leading = writer_ != nullptr;
      if (!leading) token = won_token_;
    }
    if (leading) continue;
    // After a term as leader, the state went to the writer: start over.
    if (replayer_ == nullptr) ResetStandby();
    if (token != 0) {
      absl::Status led = Lead(token);
      if (!led.ok()) {
        if (std::string(led.message()) != standby_error_) {
          Log(absl::StrCat("cannot lead: ", led.message()));
        }
        standby_error_ = std::string(led.message());
        // Lead spent the standby state: the next round starts over.
        Lose(absl::StrCat("cannot lead: ", led.message()));
        caught_up = true;  // wait a round before trying again
      }
      continue;
    }
    absl::StatusOr<int64_t> applied = replayer_->CatchUp(kStandbyChunk);
    if (!applied.ok()) {
      if (std::string(applied.status().message()) != standby_error_) {
        Log(absl::StrCat("standby: ", applied.status().message()));
      }
      standby_error_ = std::string(applied.status().message());
    }
    caught_up = !applied.ok() || *applied == 0;
    if (applied.ok() && *applied == 0 && !standby_ready_) {
      standby_ready_ = true;
      Log(absl::StrCat("standby: caught up with the journal (",
                       replayer_->commands(), " commands) in ",
                       absl::FormatDuration(clock_.Now() - standby_since_)));
    }
  }
}

void Replica::ResetStandby() {
  standby_since_ = clock_.Now();
  standby_ready_ = false;
  replayer_.reset();
  // From the newest sound snapshot, so that catching up replays only the
  // commands after it; from the first command when the store fails.
  absl::StatusOr<Recovered> recovered = LoadNewestSnapshot(store_);
  if (recovered.ok()) {
    standby_ = std::move(recovered->state);
  } else {
    Log(absl::StrCat("standby: snapshots unreadable, replaying from the "
                     "first command: ", recovered.status().message()));
    standby_ = std::make_unique<core::StateMachine>();
  }
  replayer_ = std::make_unique<Replayer>(store_, *standby_);
}

absl::Status Replica::Lead(int64_t token) {
  const absl::Time start = clock_.Now();
  const int64_t before = replayer_->commands();
  // Nobody else appends now: what is stored is all there is.
  absl::StatusOr<int64_t> tail = replayer_->CatchUp();
  absl::StatusOr<ReplayReport> report =
      tail.ok() ? replayer_->Finish() : tail.status();
  // The replayer is spent either way; the next term starts over.
  replayer_.reset();
  ReleaseReplayMemory(store_);
  std::unique_ptr<core::StateMachine> state = std::move(standby_);
  if (!report.ok()) return report.status();
  if (absl::Status s = CheckReport(*report); !s.ok()) return s;
  std::shared_ptr<Writer> writer =
      Writer::Start(store_, clock_, options_.writer, std::move(state));
  if (options_.on_lead) {
    absl::Status s = options_.on_lead(*writer);
    if (!s.ok()) {
      writer->Stop();
      return s;
    }
  }
  bool still_ours;
  {
    absl::MutexLock lock(&mu_);
    still_ours = !stopping_ && won_token_ == token;
    if (still_ours) {
      writer_ = writer;
      leader_id_ = candidate_.id;
      leader_address_ = candidate_.address;
    }
  }
  if (!still_ours) {
    // Lost meanwhile; the campaign thread has said why.
    writer->Stop();
    return absl::OkStatus();
  }
  standby_error_.clear();
  Log(absl::StrCat("leading as ", candidate_.id, " at ", candidate_.address,
                   " (fencing token ", token, "); state caught up with ",
                   report->commands - before, " more commands in ",
                   absl::FormatDuration(clock_.Now() - start), " (",
                   DescribeStart(*report), ")"));
  if (options_.on_change) options_.on_change(true);
  return absl::OkStatus();
}

void Replica::Lose(const std::string& why, bool planned) {
  std::shared_ptr<Writer> writer;
  {
    absl::MutexLock lock(&mu_);
    won_token_ = 0;
    writer = std::move(writer_);
    writer_.reset();
    leader_id_.clear();
    leader_address_.clear();
  }
  if (writer != nullptr) {
    Log(absl::StrCat("stepping down: ", why));
    // Calls in progress keep the writer alive until they finish; from now
    // on it refuses every command.
    if (!planned) {
      writer->Stop();
    } else if (absl::Status closed = writer->Close(); !closed.ok()) {
      Log(absl::StrCat("no snapshot at stop: ", closed.message(),
                       "; the next start replays the commands after the "
                       "newest one"));
    }
  }
  store_.Resign().IgnoreError();
  if (writer != nullptr && options_.on_change) options_.on_change(false);
}

void Replica::Stop() {
  if (stopped_) return;
  stopped_ = true;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (campaigner_.joinable()) campaigner_.join();
  if (follower_.joinable()) follower_.join();
  Lose("stopping", /*planned=*/true);
}

absl::StatusOr<std::shared_ptr<Writer>> Replica::writer() const {
  absl::MutexLock lock(&mu_);
  if (writer_ != nullptr) return writer_;
  if (leader_address_.empty()) {
    return absl::UnavailableError(
        "not the leader: this scheduler replica follows and no leader is "
        "known yet; retry shortly");
  }
  return absl::UnavailableError(
      absl::StrCat("not the leader: this scheduler replica follows; the "
                   "leader is at ",
                   leader_address_));
}

bool Replica::leading() const {
  absl::MutexLock lock(&mu_);
  return writer_ != nullptr;
}

std::string Replica::leader_address() const {
  absl::MutexLock lock(&mu_);
  return leader_address_;
}

}  // namespace computevoucher::engine
