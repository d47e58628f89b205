// libFuzzer target: the agent's spool log as it is read back after a crash
// (agent/spool.h). Whatever the file holds, Open either refuses it with
// DataLoss or opens a spool whose state survives its own compaction: a
// second open of what the first left holds the same pending records and
// cursors. Never crashes.
//
// Input: a mode byte, then
//   - mode even: the spool file's bytes, as they are (framing, torn and
//     corrupt frames);
//   - mode odd: payloads, each [u16 little-endian length][bytes], framed
//     here with their correct checksum, so that the fuzzer reaches the
//     entries themselves (usage, ack, cursor, forget) and their replay.
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "agent/spool.h"
#include "common/sha256.h"
#include "google/protobuf/util/message_differencer.h"

namespace {

using ::computevoucher::agent::Spool;

void Require(bool condition) {
  if (!condition) std::abort();
}

// The frame format of agent/spool.h, written independently of it:
// [u32 LE length][first 4 bytes of SHA-256(payload)][payload].
std::string Frame(absl::string_view payload) {
  std::string out;
  const uint32_t n = static_cast<uint32_t>(payload.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(n >> (8 * i)));
  out.append(computevoucher::Sha256(payload).substr(0, 4));
  out.append(payload.data(), payload.size());
  return out;
}

std::string FileFrom(absl::string_view data) {
  if (data.empty()) return "";
  const bool framed = (static_cast<uint8_t>(data[0]) & 1) != 0;
  data.remove_prefix(1);
  if (!framed) return std::string(data);
  std::string file;
  while (data.size() >= 2) {
    const size_t n = static_cast<uint8_t>(data[0]) |
                     (static_cast<size_t>(static_cast<uint8_t>(data[1])) << 8);
    data.remove_prefix(2);
    const absl::string_view payload = data.substr(0, n);
    data.remove_prefix(payload.size());
    file += Frame(payload);
  }
  return file;
}

struct State {
  std::vector<computevoucher::v1::UsageRecord> pending;
  std::vector<std::string> allocations;
  std::vector<std::optional<Spool::Cursor>> cursors;
};

State StateOf(const Spool& spool) {
  State s;
  s.pending = spool.Pending(1'000'000);
  s.allocations = spool.Allocations();
  for (const std::string& id : s.allocations) s.cursors.push_back(spool.CursorOf(id));
  Require(static_cast<int64_t>(s.pending.size()) == spool.depth());
  return s;
}

void RequireSame(const State& a, const State& b) {
  Require(a.pending.size() == b.pending.size());
  for (size_t i = 0; i < a.pending.size(); ++i) {
    Require(google::protobuf::util::MessageDifferencer::Equals(a.pending[i],
                                                               b.pending[i]));
  }
  Require(a.allocations == b.allocations);
  for (size_t i = 0; i < a.cursors.size(); ++i) {
    Require(a.cursors[i].has_value() && b.cursors[i].has_value());
    Require(a.cursors[i]->next_sequence == b.cursors[i]->next_sequence);
    Require(a.cursors[i]->resume_at == b.cursors[i]->resume_at);
    Require(a.cursors[i]->gpu_count == b.cursors[i]->gpu_count);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string root = [] {
    const char* shm = std::filesystem::is_directory("/dev/shm") ? "/dev/shm"
                                                                 : "/tmp";
    std::string dir = std::string(shm) + "/spool_fuzzer_XXXXXX";
    Require(mkdtemp(dir.data()) != nullptr);
    return dir;
  }();
  const std::string dir = root + "/spool";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  {
    std::ofstream log(dir + "/spool.log", std::ios::binary);
    const std::string file =
        FileFrom(absl::string_view(reinterpret_cast<const char*>(data), size));
    log.write(file.data(), static_cast<std::streamsize>(file.size()));
    Require(log.good());
  }
  Spool::Options options;
  options.dir = dir;
  State first;
  {
    absl::StatusOr<std::unique_ptr<Spool>> spool = Spool::Open(options);
    if (!spool.ok()) {
      // Refused as corrupt, never anything else: the directory is fine.
      Require(spool.status().code() == absl::StatusCode::kDataLoss);
      return 0;
    }
    first = StateOf(**spool);
  }
  // What the first open left (compacted, a torn tail cut) opens to the same
  // state.
  absl::StatusOr<std::unique_ptr<Spool>> again = Spool::Open(options);
  Require(again.ok());
  RequireSame(first, StateOf(**again));
  // Acknowledging what is pending empties it, durably.
  std::vector<std::pair<std::string, int64_t>> acks;
  for (const auto& r : first.pending) acks.emplace_back(r.allocation_id(), r.sequence());
  Require((*again)->Acknowledge(acks).ok());
  Require((*again)->depth() == 0);
  again->reset();
  absl::StatusOr<std::unique_ptr<Spool>> third = Spool::Open(options);
  Require(third.ok() && (*third)->depth() == 0);
  return 0;
}
