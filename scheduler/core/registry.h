// The registry of the state machine: programs, enterprises, providers,
// clusters and tokens — who may take part, and on what terms — with
// provider settlement. It funds a program's budget when creating it and
// pays providers out of their payable, posting through Books; everything
// else about money is the voucher book's and placement's.
//
// Handlers validate before their first change: on error nothing changed.
// Not thread-safe; owned by StateMachine.
#ifndef COMPUTEVOUCHER_SCHEDULER_CORE_REGISTRY_H_
#define COMPUTEVOUCHER_SCHEDULER_CORE_REGISTRY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "computevoucher/v1/admin.pb.h"
#include "computevoucher/v1/agent.pb.h"
#include "computevoucher/v1/journal.pb.h"
#include "computevoucher/v1/snapshot.pb.h"
#include "computevoucher/v1/types.pb.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "scheduler/core/books.h"
#include "scheduler/core/records.h"
#include "scheduler/core/response.h"

namespace computevoucher::core {

class Registry {
 public:
  struct State {
    absl::btree_map<std::string, pb::Program> programs;
    absl::btree_map<std::string, pb::Enterprise> enterprises;
    absl::btree_map<std::string, pb::Provider> providers;
    absl::btree_map<std::string, ClusterRec> clusters;
    absl::btree_map<std::string, pb::Token> tokens;
    // Indexes, derived from the entities above.
    absl::flat_hash_map<std::string, std::string> credit_codes;   // -> id
    absl::flat_hash_map<std::string, std::string> token_hashes;   // -> id
    absl::flat_hash_map<std::string, std::string> cluster_owner;  // -> prov.
    int64_t next_program = 0;
    int64_t next_enterprise = 0;
    int64_t next_provider = 0;
    int64_t next_token = 0;
    int64_t next_settlement = 0;
  };

  // What a cluster command did: whether it changed anything, and whether
  // it may have added capacity the queue should try.
  struct ClusterChange {
    bool changed = false;
    bool capacity_added = false;
  };

  explicit Registry(Books& books) : books_(books) {}
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // --- Commands, at books.now(). ---
  absl::StatusOr<Response> BootstrapAdmin(const pb::BootstrapAdminCommand& r);
  absl::StatusOr<Response> CreateToken(const pb::CreateTokenCommand& c);
  // Records when, and by which token, unless `revoked_by` is nullptr (a
  // revocation logged before they were recorded).
  absl::StatusOr<Response> RevokeToken(const pb::RevokeTokenRequest& r,
                                       const std::string* revoked_by);
  // Records when tokens were last used (a tick's token_uses); whether any
  // record changed.
  bool RecordTokenUses(
      const google::protobuf::RepeatedPtrField<pb::TokenUse>& uses);
  // Creates the program and funds its budget (a FUND entry).
  absl::StatusOr<Response> CreateProgram(const pb::CreateProgramRequest& r);
  absl::StatusOr<Response> RegisterEnterprise(
      const pb::RegisterEnterpriseRequest& r);
  absl::StatusOr<Response> SetRelatedProviders(
      const pb::SetRelatedProvidersRequest& r);
  absl::StatusOr<Response> RegisterProvider(
      const pb::RegisterProviderRequest& r);
  // Pays part of a provider's payable (a SETTLE entry).
  absl::StatusOr<Response> SettleProvider(const pb::SettleProviderRequest& r);
  // Approves or disables a cluster; approving takes a proposed inventory.
  absl::StatusOr<ClusterChange> SetClusterState(
      const pb::SetClusterStateRequest& r);
  // Registers the cluster of agent `p`, or re-registers it: an inventory
  // that sells more or dearer than the approved one waits for review as a
  // proposal. PermissionDenied unless `p` is an agent bound to a cluster.
  absl::StatusOr<ClusterChange> RegisterCluster(const pb::Principal& p,
                                                const pb::RegisterRequest& r);

  // --- Lookups for the other components. ---
  // NotFound "<field>: enterprise <id> not found"; InvalidArgument for a
  // malformed id.
  absl::StatusOr<const pb::Enterprise*> FindEnterprise(
      const std::string& field, const std::string& id) const;
  // As FindEnterprise, for field program_id.
  absl::StatusOr<const pb::Program*> FindProgram(const std::string& id) const;
  // FailedPrecondition unless `enterprise`'s category is eligible.
  absl::Status CheckEligible(const pb::Program& program,
                             const pb::Enterprise& enterprise) const;
  // The token whose secret hashes to `secret_sha256`, or nullptr.
  const pb::Token* FindTokenByHash(const std::string& secret_sha256) const;
  // Counts `delta` more GPUs of `model` in use on `cluster_id`, which must
  // exist.
  void AddUsedGpus(const std::string& cluster_id, const std::string& model,
                   int32_t delta);

  // --- Views, with derived balances. ---
  absl::StatusOr<pb::Program> ProgramView(const std::string& program_id) const;
  // The enterprise whose credit code is `code` (normalised,
  // NormalizeCreditCode); nullptr when none is.
  const pb::Enterprise* EnterpriseByCreditCode(const std::string& code) const;
  absl::StatusOr<pb::Provider> ProviderView(
      const std::string& provider_id) const;
  absl::StatusOr<pb::Cluster> ClusterView(const std::string& cluster_id) const;
  pb::Cluster ClusterViewOf(const ClusterRec& rec) const;
  std::vector<std::string> ClusterIds() const;

  const State& state() const { return state_; }

  // The component as a snapshot, and back into a fresh component
  // (scheduler/core/snapshot.cc).
  void Save(pb::RegistrySnapshot* out) const;
  absl::Status Load(const pb::RegistrySnapshot& in);

 private:
  absl::Status CheckRelatedProviders(
      const google::protobuf::RepeatedPtrField<std::string>& ids) const;

  Books& books_;
  State state_;
};

}  // namespace computevoucher::core

#endif  // COMPUTEVOUCHER_SCHEDULER_CORE_REGISTRY_H_
