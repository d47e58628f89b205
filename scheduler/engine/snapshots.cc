#include "scheduler/engine/snapshots.h"

#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/deflate.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "scheduler/engine/log.h"

namespace computevoucher::engine {
namespace {

// Larger than any state this build saves.
constexpr uint64_t kMaxStateBytes = uint64_t{1} << 34;

}  // namespace

store::Snapshot EncodeSnapshot(const pb::StateSnapshot& saved) {
  store::Snapshot out;
  out.position = saved.last_command_sequence();
  out.state = Deflate(core::Deterministic(saved));
  out.digest = Sha256(out.state);
  return out;
}

absl::StatusOr<pb::StateSnapshot> DecodeSnapshot(
    const store::Snapshot& stored) {
  const std::string prefix = absl::StrCat("snapshot at command ",
                                          stored.position, ": ");
  if (Sha256(stored.state) != stored.digest) {
    return absl::DataLossError(absl::StrCat(
        prefix, "its ", stored.state.size(),
        " bytes do not hash to the digest stored with them"));
  }
  absl::StatusOr<std::string> bytes = Inflate(stored.state, kMaxStateBytes);
  if (!bytes.ok()) {
    return absl::DataLossError(
        absl::StrCat(prefix, bytes.status().message()));
  }
  pb::StateSnapshot saved;
  if (!saved.ParseFromString(*bytes)) {
    return absl::DataLossError(absl::StrCat(prefix, "does not parse"));
  }
  if (saved.last_command_sequence() != stored.position) {
    return absl::DataLossError(absl::StrCat(
        prefix, "holds the state at command ", saved.last_command_sequence()));
  }
  return saved;
}

std::string Comparable(pb::StateSnapshot saved) {
  saved.mutable_books()->clear_now();
  return core::Deterministic(saved);
}

absl::StatusOr<Recovered> LoadNewestSnapshot(store::CommandLog& log) {
  ASSIGN_OR_RETURN(const std::vector<int64_t> positions, log.ListSnapshots());
  Recovered out;
  for (const int64_t position : positions) {
    ASSIGN_OR_RETURN(const store::Snapshot stored, log.ReadSnapshot(position));
    auto state = std::make_unique<core::StateMachine>();
    absl::Status loaded = [&]() -> absl::Status {
      ASSIGN_OR_RETURN(const pb::StateSnapshot saved, DecodeSnapshot(stored));
      return state->Load(saved);
    }();
    if (loaded.ok()) {
      out.state = std::move(state);
      out.position = position;
      return out;
    }
    Log(absl::StrCat("snapshot at command ", position,
                     " refused, trying an older one: ", loaded.message()));
    out.refused.push_back(std::string(loaded.message()));
  }
  out.state = std::make_unique<core::StateMachine>();
  return out;
}

}  // namespace computevoucher::engine
