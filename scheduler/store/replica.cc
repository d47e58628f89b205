#include "scheduler/store/replica.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"

namespace cv::store {
namespace {

void Log(const std::string& line) {
  std::printf("voucher-scheduler: %s\n", line.c_str());
  std::fflush(stdout);
}

}  // namespace

Replica::Replica(Store& store, Clock& clock, ReplicaOptions options)
    : store_(store), clock_(clock), options_(std::move(options)) {
  candidate_.id = NewCandidateId();
}

Replica::~Replica() { Stop(); }

absl::Status Replica::Start(const std::string& address) {
  candidate_.address = address;
  absl::Status first = CampaignOnce();
  // An unreachable database may come back: keep following and campaigning.
  // Anything else (a journal that breaks an invariant, a token that cannot
  // be written) would fail again: do not start.
  if (!first.ok() && first.code() != absl::StatusCode::kUnavailable) {
    return first;
  }
  thread_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

void Replica::Loop() {
  const absl::Duration period =
      std::max(options_.lease / 4, absl::Milliseconds(10));
  while (!stop_.WaitForNotificationWithTimeout(period)) {
    CampaignOnce().IgnoreError();
  }
}

absl::Status Replica::CampaignOnce() {
  const absl::Time sent = clock_.Now();
  absl::StatusOr<Leadership> won = store_.Campaign(candidate_, options_.lease);
  if (!won.ok()) {
    const std::string error(won.status().message());
    if (error != last_error_) Log(absl::StrCat("lease: ", error));
    last_error_ = error;
    // Step down while the lease is still surely ours: the next round would
    // come too late.
    if (leading() && clock_.Now() + options_.lease / 4 >= valid_until_) {
      StepDown(absl::StrCat("cannot renew the lease: ", error));
    }
    return won.status();
  }
  last_error_.clear();
  if (!won->leading) {
    if (leading()) {
      StepDown(absl::StrCat("lost the lease to ", won->leader_id,
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
  if (leading()) return absl::OkStatus();
  absl::Status led = Lead();
  if (!led.ok()) {
    Log(absl::StrCat("cannot lead: ", led.message()));
    store_.Resign().IgnoreError();
  }
  return led;
}

absl::Status Replica::Lead() {
  const absl::Time start = clock_.Now();
  absl::StatusOr<std::unique_ptr<Writer>> opened =
      Writer::Open(store_, clock_, options_.writer);
  if (!opened.ok()) return opened.status();
  std::shared_ptr<Writer> writer = *std::move(opened);
  if (options_.on_lead) {
    absl::Status s = options_.on_lead(*writer);
    if (!s.ok()) {
      writer->Stop();
      return s;
    }
  }
  const int64_t commands = writer->Read(
      [](const core::StateMachine& s) { return s.last_command_sequence(); });
  {
    absl::MutexLock lock(&mu_);
    writer_ = std::move(writer);
    leader_id_ = candidate_.id;
    leader_address_ = candidate_.address;
  }
  Log(absl::StrCat("leading as ", candidate_.id, " at ", candidate_.address,
                   "; state loaded (", commands, " commands) in ",
                   absl::FormatDuration(clock_.Now() - start)));
  if (options_.on_change) options_.on_change(true);
  return absl::OkStatus();
}

void Replica::StepDown(const std::string& why) {
  std::shared_ptr<Writer> writer;
  {
    absl::MutexLock lock(&mu_);
    writer = std::move(writer_);
    writer_.reset();
    leader_id_.clear();
    leader_address_.clear();
  }
  if (writer == nullptr) return;
  Log(absl::StrCat("stepping down: ", why));
  // Calls in progress keep the writer alive until they finish; from now on
  // it refuses every command.
  writer->Stop();
  store_.Resign().IgnoreError();
  if (options_.on_change) options_.on_change(false);
}

void Replica::Stop() {
  if (stopped_) return;
  stopped_ = true;
  stop_.Notify();
  if (thread_.joinable()) thread_.join();
  StepDown("stopping");
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

}  // namespace cv::store
