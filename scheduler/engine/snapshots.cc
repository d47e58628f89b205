#include "scheduler/engine/snapshots.h"

#include <zlib.h>

#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "scheduler/engine/log.h"

namespace computevoucher::engine {

namespace {

// Stored state: the deterministic bytes' length (8 bytes, little-endian),
// then the bytes deflated. A snapshot is mostly repeated ids and account
// names, and the smaller it is the shorter the store's write, which
// appends wait behind.
constexpr size_t kLengthBytes = 8;
// Larger than any state this build saves; a corrupt length asks for no more.
constexpr uint64_t kMaxStateBytes = uint64_t{1} << 34;

std::string Deflate(const std::string& bytes) {
  uLongf size = compressBound(bytes.size());
  std::string out(kLengthBytes + size, '\0');
  for (size_t i = 0; i < kLengthBytes; ++i) {
    out[i] = static_cast<char>(static_cast<uint64_t>(bytes.size()) >> (8 * i));
  }
  // Level 1: most of the gain for a fraction of the time.
  compress2(reinterpret_cast<Bytef*>(&out[kLengthBytes]), &size,
            reinterpret_cast<const Bytef*>(bytes.data()), bytes.size(), 1);
  out.resize(kLengthBytes + size);
  return out;
}

absl::StatusOr<std::string> Inflate(const std::string& stored) {
  if (stored.size() < kLengthBytes) {
    return absl::DataLossError("it is shorter than its length");
  }
  uint64_t length = 0;
  for (size_t i = 0; i < kLengthBytes; ++i) {
    length |= uint64_t{static_cast<unsigned char>(stored[i])} << (8 * i);
  }
  if (length > kMaxStateBytes) {
    return absl::DataLossError(absl::StrCat("its length ", length,
                                            " is out of range"));
  }
  std::string out(length, '\0');
  uLongf size = length;
  const int rc = uncompress(
      reinterpret_cast<Bytef*>(out.data()), &size,
      reinterpret_cast<const Bytef*>(stored.data() + kLengthBytes),
      stored.size() - kLengthBytes);
  if (rc != Z_OK || size != length) {
    return absl::DataLossError("it does not inflate to its length");
  }
  return out;
}

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
  absl::StatusOr<std::string> bytes = Inflate(stored.state);
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
