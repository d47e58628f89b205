// Limits on what a command may carry, shared by the state machine and the
// services that check a request's envelope before it becomes a command.
#ifndef COMPUTEVOUCHER_SCHEDULER_CORE_LIMITS_H_
#define COMPUTEVOUCHER_SCHEDULER_CORE_LIMITS_H_

#include <cstdint>

#include "absl/time/time.h"

namespace computevoucher::core {

// GPUs one allocation may ask for.
inline constexpr int kMaxGpus = 1024;
// GPU models one cluster's inventory may list.
inline constexpr int kMaxModels = 64;
// An allocation's duration, and that of one extension.
inline constexpr int64_t kMinDurationS = 60;
inline constexpr int64_t kMaxDurationS = 365 * 24 * 3600;
// Usage records in one report, and observed allocations in one heartbeat.
inline constexpr int kMaxUsageRecords = 10'000;
// Texts from agents (docs/features.md, "Agent protocol"; docs/limits.md): how
// many characters each may have.
inline constexpr int kMaxMeterChars = 64;
inline constexpr int kMaxAccessChars = 1024;
inline constexpr int kMaxEndDetailChars = 256;
inline constexpr int kMaxEvidenceChars = 512;

// How far past the scheduler's clock a usage record may claim to end (agent
// clocks drift); the part after the scheduler's now is never subsidised.
inline constexpr absl::Duration kUsageClockSkew = absl::Minutes(5);

// How long a request id is remembered, per token, so that a retry returns
// the first answer (as payment APIs keep idempotency keys for a stated
// time). A request id reused after that is a new request.
inline constexpr absl::Duration kRequestIdRetention = absl::Hours(7 * 24);

// How long an ended allocation stays in memory, its hold released, before
// it is retired to the store (SchedulerConfig.retain_ended_s): by default
// and at most.
inline constexpr int64_t kDefaultRetainEndedS = 30 * 24 * 3600;
inline constexpr int64_t kMaxRetainEndedS = 10 * 365 * 24 * 3600;
// Most allocations one tick retires (TickCommand.retire_at_most): the
// server's choice, so that the first tick after an upgrade, with years of
// allocations due, still commits quickly; and the most a tick may ask for.
inline constexpr int kRetiredPerTick = 1000;
inline constexpr int kMaxRetiredPerTick = 100'000;
// Most token uses one tick records (TickCommand.token_uses).
inline constexpr int kMaxTokenUsesPerTick = 10'000;
// A token's use is recorded when its recorded last use is at least this
// old, so that a token in constant use (an agent's heartbeats) costs one
// logged tick an hour.
inline constexpr absl::Duration kTokenUseInterval = absl::Hours(1);

}  // namespace computevoucher::core

#endif  // COMPUTEVOUCHER_SCHEDULER_CORE_LIMITS_H_
