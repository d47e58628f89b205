// libFuzzer target: the configuration files of the three programs, parsed
// and checked as at start-up — the scheduler's (NormalizeConfig,
// ValidateStoreConfig), the agent's (NormalizeAgentConfig, with its Slurm
// section) and voucherctl's (its endpoint list). Whatever a file holds is
// either refused with InvalidArgument or accepted; never a crash, and a
// configuration once normalized normalizes to itself.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "agent/agent.h"
#include "common/config.h"
#include "common/leader.h"
#include "computevoucher/v1/config.pb.h"
#include "google/protobuf/util/message_differencer.h"
#include "scheduler/server.h"
#include "scheduler/store/open_store.h"

namespace {

namespace pb = ::computevoucher::v1;

void Require(bool condition) {
  if (!condition) std::abort();
}

// A refusal of a configuration is InvalidArgument (or, for a file it names
// that cannot be read, NotFound / PermissionDenied / FailedPrecondition).
void RequireClean(const absl::Status& s) {
  Require(s.ok() || s.code() == absl::StatusCode::kInvalidArgument ||
          s.code() == absl::StatusCode::kNotFound ||
          s.code() == absl::StatusCode::kPermissionDenied ||
          s.code() == absl::StatusCode::kFailedPrecondition);
}

template <typename Config, typename Normalize>
void Check(const std::string& text, Normalize normalize) {
  Config config;
  const absl::Status parsed = computevoucher::ParseTextProto("config", text, &config);
  RequireClean(parsed);
  if (!parsed.ok()) return;
  const absl::Status first = normalize(config);
  RequireClean(first);
  if (!first.ok()) return;
  Config again = config;
  Require(normalize(again).ok());
  Require(google::protobuf::util::MessageDifferencer::Equals(config, again));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  Check<pb::SchedulerConfig>(text, [](pb::SchedulerConfig& c) {
    absl::Status s = computevoucher::scheduler::NormalizeConfig(c);
    if (s.ok()) s = computevoucher::store::ValidateStoreConfig(c);
    return s;
  });
  Check<pb::AgentConfig>(
      text, [](pb::AgentConfig& c) { return computevoucher::agent::NormalizeAgentConfig(c); });
  pb::ClientConfig client;
  if (computevoucher::ParseTextProto("config", text, &client).ok()) {
    auto endpoints = computevoucher::ParseAddressList("endpoint", client.endpoint());
    RequireClean(endpoints.status());
    if (endpoints.ok()) {
      for (const std::string& e : *endpoints) Require(!e.empty());
    }
  }
  return 0;
}
