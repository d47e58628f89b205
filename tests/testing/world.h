// A small, realistic world for scheduler tests: one program modelled on
// Hangzhou's (¥250M, 30% domestic / 20% other / 50% SME, ¥8M cap), two
// providers with one approved cluster each, three enterprises (one an SME
// related to the second provider), driven through the real state machine
// with injected time.
#ifndef COMPUTEVOUCHER_TESTS_TESTING_WORLD_H_
#define COMPUTEVOUCHER_TESTS_TESTING_WORLD_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "computevoucher/v1/journal.pb.h"
#include "scheduler/core/state_machine.h"

namespace computevoucher::testing {

namespace pb = ::computevoucher::v1;

pb::Principal AdminPrincipal();
pb::Principal EnterprisePrincipal(const std::string& enterprise_id);
pb::Principal AgentPrincipal(const std::string& cluster_id);

// A command from `principal` with `request_id`; the caller sets its body.
pb::Command NewCommand(const pb::Principal& principal,
                       const std::string& request_id);

// 2025-03-01 00:00:00 Asia/Shanghai.
absl::Time WorldStart();

// The standard world as requests (request ids left empty), shared by the
// state-machine Driver and the API tests: program P-000001; providers
// PR-000001 and PR-000002; enterprises E-000001 (整机), E-000002 (SME,
// 软件算法, related to PR-000002), E-000003 (科研平台); clusters "hz-a"
// (PR-000001: 8 × H100 other at 2000 fen/GPU-hour, 16 × 910B domestic at
// 1200) and "sz-b" (PR-000002: 8 × H100 other at 1800).
pb::CreateProgramRequest WorldProgram();
std::vector<pb::RegisterProviderRequest> WorldProviders();
std::vector<pb::RegisterEnterpriseRequest> WorldEnterprises();
struct WorldCluster {
  std::string cluster_id;
  std::string provider_id;
  pb::RegisterRequest registration;
};
std::vector<WorldCluster> WorldClusters();

// Applies commands to a state machine, stamping sequences and a time that
// only moves when the test advances it.
class Driver {
 public:
  explicit Driver(core::StateMachine& state, absl::Time start = WorldStart())
      : state_(state), now_(start) {}

  absl::Time now() const { return now_; }
  void Advance(absl::Duration d) { now_ += d; }
  core::StateMachine& state() { return state_; }

  // Stamps and applies `command`; the sequence advances only when the
  // command changed the state (as the writer does).
  absl::StatusOr<core::Outcome> Apply(pb::Command command);

  // Applies and returns the response as `T`; the error otherwise.
  template <typename T>
  absl::StatusOr<T> Call(pb::Command command) {
    absl::StatusOr<core::Outcome> outcome = Apply(std::move(command));
    if (!outcome.ok()) return outcome.status();
    return *static_cast<const T*>(outcome->response.get());
  }

  // Every command that changed the state, in order, as the writer would
  // have logged it.
  const std::vector<pb::Command>& log() const { return log_; }

  // Ticks with the given grace period for late usage, retiring allocations
  // ended and vouchers whose window ended `retain_ended_s` ago (0: none).
  absl::StatusOr<core::Outcome> Tick(int64_t usage_grace_s = 300,
                                     int64_t retain_ended_s = 0);

  // Typed shortcuts for the commands tests use most.
  absl::StatusOr<pb::Voucher> Issue(const std::string& program_id,
                                    const std::string& enterprise_id,
                                    int64_t face_value_fen,
                                    int32_t priority = 0);
  absl::StatusOr<pb::Allocation> Allocate(const std::string& enterprise_id,
                                          const std::string& model,
                                          int32_t gpus, int64_t duration_s,
                                          bool queue_if_busy = false,
                                          const std::string& voucher_id = "");
  absl::StatusOr<pb::Allocation> Release(const std::string& enterprise_id,
                                         const std::string& allocation_id);
  // Reports one record [start, end) with gpu_ms from `cluster_id`'s agent.
  absl::StatusOr<pb::UsageAck> Report(const std::string& cluster_id,
                                      const std::string& allocation_id,
                                      int64_t sequence, absl::Time start,
                                      absl::Time end, int64_t gpu_ms);

  // Builds the standard world (WorldProgram() and the rest, above), with
  // agent tokens for both clusters and both clusters approved.
  absl::Status BuildWorld();

 private:
  int64_t NextRequest() { return ++requests_; }

  core::StateMachine& state_;
  absl::Time now_;
  int64_t sequence_ = 0;
  int64_t requests_ = 0;
  std::vector<pb::Command> log_;
};

}  // namespace computevoucher::testing

#endif  // COMPUTEVOUCHER_TESTS_TESTING_WORLD_H_
