// The state machine's components wired as StateMachine wires them, without
// its dispatch, for tests of one component: the standard world of
// tests/testing/world.h built directly on the registry, with commands run
// at the time the test sets.
#ifndef COMPUTEVOUCHER_TESTS_SCHEDULER_CORE_COMPONENTS_FIXTURE_H_
#define COMPUTEVOUCHER_TESTS_SCHEDULER_CORE_COMPONENTS_FIXTURE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "gtest/gtest.h"
#include "scheduler/core/books.h"
#include "scheduler/core/placement.h"
#include "scheduler/core/registry.h"
#include "scheduler/core/usage_charging.h"
#include "scheduler/core/voucher_book.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/world.h"

namespace computevoucher::core {

class ComponentsTest : public ::testing::Test {
 protected:
  static constexpr int64_t kYuan = 100;

  void SetUp() override {
    books_.set_now(::computevoucher::testing::WorldStart());
  }

  void Advance(absl::Duration d) { books_.set_now(books_.now() + d); }

  // The world of tests/testing/world.h: program P-000001, providers
  // PR-000001 and PR-000002, enterprises E-000001..3, clusters "hz-a" and
  // "sz-b" approved.
  absl::Status BuildWorld() {
    namespace t = ::computevoucher::testing;
    RETURN_IF_ERROR(registry_.CreateProgram(t::WorldProgram()).status());
    for (const pb::RegisterProviderRequest& r : t::WorldProviders())
      RETURN_IF_ERROR(registry_.RegisterProvider(r).status());
    for (const pb::RegisterEnterpriseRequest& r : t::WorldEnterprises())
      RETURN_IF_ERROR(registry_.RegisterEnterprise(r).status());
    for (const t::WorldCluster& cluster : t::WorldClusters()) {
      RETURN_IF_ERROR(
          AgentToken(cluster.cluster_id, cluster.provider_id).status());
      RETURN_IF_ERROR(
          registry_
              .RegisterCluster(t::AgentPrincipal(cluster.cluster_id),
                               cluster.registration)
              .status());
      pb::SetClusterStateRequest approve;
      approve.set_cluster_id(cluster.cluster_id);
      approve.set_state(pb::CLUSTER_STATE_APPROVED);
      RETURN_IF_ERROR(registry_.SetClusterState(approve).status());
    }
    return absl::OkStatus();
  }

  // Creates an agent token binding `cluster_id` to `provider_id`.
  absl::StatusOr<Response> AgentToken(const std::string& cluster_id,
                                      const std::string& provider_id) {
    pb::CreateTokenCommand c;
    c.mutable_request()->set_role(pb::ROLE_AGENT);
    c.mutable_request()->set_cluster_id(cluster_id);
    c.mutable_request()->set_provider_id(provider_id);
    // Any 32 bytes, distinct per binding.
    std::string secret = cluster_id + "/" + provider_id;
    secret.resize(32, '.');
    c.set_secret_sha256(secret);
    return registry_.CreateToken(c);
  }

  // Issues a voucher of `yuan` to `enterprise_id` from P-000001.
  absl::StatusOr<pb::Voucher> Issue(const std::string& enterprise_id,
                                    int64_t yuan) {
    pb::IssueVoucherRequest r;
    r.set_program_id("P-000001");
    r.set_enterprise_id(enterprise_id);
    r.set_face_value_fen(yuan * kYuan);
    ASSIGN_OR_RETURN(Response response, vouchers_.IssueVoucher(r));
    return static_cast<const pb::Voucher&>(*response);
  }

  // Allocates `count` × `model` for an hour for `enterprise_id`.
  absl::StatusOr<pb::Allocation> Allocate(const std::string& enterprise_id,
                                          const std::string& model,
                                          int32_t count,
                                          bool queue_if_busy = false) {
    pb::AllocateRequest r;
    r.mutable_resources()->set_gpu_model(model);
    r.mutable_resources()->set_gpu_count(count);
    r.mutable_resources()->set_max_duration_s(3600);
    r.set_queue_if_busy(queue_if_busy);
    ASSIGN_OR_RETURN(
        Response response,
        placement_.Allocate(
            ::computevoucher::testing::EnterprisePrincipal(enterprise_id),
            "request", r));
    return static_cast<const pb::Allocation&>(*response);
  }

  Books books_;
  Registry registry_{books_};
  VoucherBook vouchers_{registry_, books_};
  Placement placement_{registry_, vouchers_, books_};
  UsageCharging usage_{placement_, vouchers_, books_};
};

}  // namespace computevoucher::core

#endif  // COMPUTEVOUCHER_TESTS_SCHEDULER_CORE_COMPONENTS_FIXTURE_H_
