// libFuzzer target: the state machine fed arbitrary commands. The input is a
// sequence of length-prefixed pb::Command messages (one byte of length, then
// that many bytes; a byte of time step between them) applied to the
// standard world (tests/testing/world.h) with the agent, enterprise and
// admin principals the bytes pick. Whatever is accepted or refused, every
// invariant of the journal (scheduler/core/verify.h) must hold after every
// command, and an Internal error (a broken invariant caught by the state
// machine itself) is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "scheduler/core/state_machine.h"
#include "scheduler/core/verify.h"
#include "tests/testing/world.h"

namespace {

namespace pb = ::computevoucher::v1;

pb::Principal PrincipalFor(uint8_t pick) {
  switch (pick % 5) {
    case 0:
      return computevoucher::testing::AdminPrincipal();
    case 1:
      return computevoucher::testing::EnterprisePrincipal("E-000001");
    case 2:
      return computevoucher::testing::EnterprisePrincipal("E-000003");
    case 3:
      return computevoucher::testing::AgentPrincipal("hz-a");
    default:
      return computevoucher::testing::AgentPrincipal("sz-b");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  computevoucher::core::StateMachine state;
  computevoucher::testing::Driver driver(state);
  if (!driver.BuildWorld().ok()) std::abort();
  computevoucher::core::JournalVerifier verifier;
  auto absorb = [&] {
    for (const pb::JournalEntry& e : state.TakeJournal()) verifier.Add(e);
    // A fuzzed tick may retire allocations and vouchers: the verifier checks
    // and forgets them as a full replay does.
    for (const pb::Allocation& a : state.TakeRetired()) verifier.Forget(a);
    for (const pb::Voucher& v : state.TakeRetiredVouchers()) verifier.Forget(v);
    state.TakeUsage();
    const std::vector<std::string> violations = verifier.Check(state);
    if (!violations.empty()) {
      std::fprintf(stderr, "invariant broken: %s\n", violations.front().c_str());
      std::abort();
    }
  };
  absorb();
  size_t i = 0;
  int n = 0;
  while (i + 3 <= size && n < 64) {
    const uint8_t length = data[i];
    const uint8_t principal = data[i + 1];
    const uint8_t step_s = data[i + 2];
    i += 3;
    if (i + length > size) break;
    pb::Command command;
    if (!command.ParseFromArray(data + i, length)) {
      i += length;
      continue;
    }
    i += length;
    // The driver stamps sequence and time; the bytes choose who sends it.
    *command.mutable_principal() = PrincipalFor(principal);
    if (command.request_id().empty()) {
      command.set_request_id("fuzz-" + std::to_string(n));
    }
    driver.Advance(absl::Seconds(step_s));
    absl::StatusOr<computevoucher::core::Outcome> outcome = driver.Apply(command);
    if (!outcome.ok() &&
        outcome.status().code() == absl::StatusCode::kInternal) {
      std::fprintf(stderr, "internal error: %s\n",
                   std::string(outcome.status().message()).c_str());
      std::abort();
    }
    absorb();
    ++n;
  }
  return 0;
}
