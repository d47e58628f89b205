// Retired records: allocations and vouchers that ended long enough ago to
// leave the scheduler's memory (core::Placement::RetireDue,
// core::VoucherBook::RetireDue). The store keeps each one's final view,
// written in the transaction of the command that retired it, and answers
// lookups and listings for them. The audit log's events are kept the same
// way.
#ifndef COMPUTEVOUCHER_SCHEDULER_STORE_RETIRED_H_
#define COMPUTEVOUCHER_SCHEDULER_STORE_RETIRED_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "computevoucher/v1/admin.pb.h"
#include "computevoucher/v1/types.pb.h"

namespace computevoucher::store {

namespace pb = ::computevoucher::v1;

// Which retired allocations to read: those matching every non-empty field,
// retired (pb::Allocation.retired_at) in [retired_from, retired_until],
// with an id after `after_id`, in id order.
struct RetiredQuery {
  std::string allocation_id;
  std::string enterprise_id;
  std::string provider_id;
  std::string cluster_id;
  std::string voucher_id;
  absl::Time retired_from = absl::InfinitePast();
  absl::Time retired_until = absl::InfiniteFuture();
  std::string after_id;
  int limit = 1000;
};

// Which retired vouchers to read, the same way (pb::Voucher.retired_at).
struct RetiredVoucherQuery {
  std::string voucher_id;
  std::string program_id;
  std::string enterprise_id;
  std::string state;  // its name, e.g. "VOUCHER_STATE_EXPIRED"
  absl::Time retired_from = absl::InfinitePast();
  absl::Time retired_until = absl::InfiniteFuture();
  std::string after_id;
  int limit = 1000;
};

// Which audit events to read: those matching every non-empty field,
// applied in [from, until), with a sequence after `after`, in log order.
struct AuditQuery {
  std::string token_id;
  std::string object_id;
  absl::Time from = absl::InfinitePast();
  absl::Time until = absl::InfiniteFuture();
  int64_t after = 0;
  int limit = 1000;
};

class RetiredRecords {
 public:
  virtual ~RetiredRecords() = default;

  // Up to `query.limit` (1..10000) retired allocations matching `query`, in
  // id order. DataLoss when a stored one does not parse.
  virtual absl::StatusOr<std::vector<pb::Allocation>> ReadRetired(
      const RetiredQuery& query) = 0;
  // The same for retired vouchers.
  virtual absl::StatusOr<std::vector<pb::Voucher>> ReadRetiredVouchers(
      const RetiredVoucherQuery& query) = 0;
  // The audit events (Batch.audit), kept like retired records: written
  // with their batch, never updated, and not dropped by archiving.
  virtual absl::StatusOr<std::vector<pb::AuditEvent>> ReadAudit(
      const AuditQuery& query) = 0;
};

}  // namespace computevoucher::store

#endif  // COMPUTEVOUCHER_SCHEDULER_STORE_RETIRED_H_
