// Snapshots of the state machine in the store (DESIGN.md, "Snapshots"):
// how a saved state is encoded for the store, checked and loaded back, and
// how start-up picks the newest sound one.
#ifndef COMPUTEVOUCHER_SCHEDULER_ENGINE_SNAPSHOTS_H_
#define COMPUTEVOUCHER_SCHEDULER_ENGINE_SNAPSHOTS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "computevoucher/v1/snapshot.pb.h"
#include "scheduler/core/state_machine.h"
#include "scheduler/store/command_log.h"

namespace computevoucher::engine {

namespace pb = ::computevoucher::v1;

// `saved` as the store keeps it: its deterministic bytes, deflated, with
// the SHA-256 of what is stored as the digest.
store::Snapshot EncodeSnapshot(const pb::StateSnapshot& saved);

// Decodes `stored`: DataLoss unless the hash of its bytes is its digest,
// they inflate and parse, and the state is at the snapshot's position.
absl::StatusOr<pb::StateSnapshot> DecodeSnapshot(const store::Snapshot& stored);

// The saved state without the time of the last command applied, which a
// writer may have moved past the last command logged: the bytes that two
// snapshots of the same position have in common.
std::string Comparable(pb::StateSnapshot saved);

struct Recovered {
  std::unique_ptr<core::StateMachine> state;
  // The snapshot loaded; 0 when none was (the state is fresh).
  int64_t position = 0;
  // The newer snapshots refused, each with why (also logged).
  std::vector<std::string> refused;
};

// The newest stored snapshot that decodes and loads, or a fresh state when
// there is none. A snapshot that fails its checks is never used: the next
// older one is tried, and the refusal is logged to stderr. Errors are the
// store's only.
absl::StatusOr<Recovered> LoadNewestSnapshot(store::CommandLog& log);

}  // namespace computevoucher::engine

#endif  // COMPUTEVOUCHER_SCHEDULER_ENGINE_SNAPSHOTS_H_
