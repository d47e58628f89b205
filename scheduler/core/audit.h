// What the audit log keeps of a command: who sent it, from where, what it
// did and to which object. Built by the writer from each logged command and
// its answer, and stored with the command's batch.
#ifndef COMPUTEVOUCHER_SCHEDULER_CORE_AUDIT_H_
#define COMPUTEVOUCHER_SCHEDULER_CORE_AUDIT_H_

#include <optional>

#include "computevoucher/v1/admin.pb.h"
#include "computevoucher/v1/journal.pb.h"
#include "google/protobuf/message.h"

namespace computevoucher::core {

namespace pb = ::computevoucher::v1;

// The audit event of `command` (logged, so with its sequence and time),
// whose answer was `response` (may be null); nullopt for the commands
// machines send on their own schedule: ticks, heartbeats and usage reports.
std::optional<pb::AuditEvent> AuditEventOf(
    const pb::Command& command, const google::protobuf::Message* response);

}  // namespace computevoucher::core

#endif  // COMPUTEVOUCHER_SCHEDULER_CORE_AUDIT_H_
