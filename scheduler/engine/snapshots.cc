#include "scheduler/engine/snapshots.h"

#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace computevoucher::engine {

store::Snapshot EncodeSnapshot(const pb::StateSnapshot& saved) {
  store::Snapshot out;
  out.position = saved.last_command_sequence();
  out.state = core::Deterministic(saved);
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
  pb::StateSnapshot saved;
  if (!saved.ParseFromString(stored.state)) {
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
    std::fprintf(stderr,
                 "voucher-scheduler: snapshot at command %lld refused, "
                 "trying an older one: %s\n",
                 static_cast<long long>(position),
                 std::string(loaded.message()).c_str());
    std::fflush(stderr);
    out.refused.push_back(std::string(loaded.message()));
  }
  out.state = std::make_unique<core::StateMachine>();
  return out;
}

}  // namespace computevoucher::engine
