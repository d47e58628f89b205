#include "scheduler/core/audit.h"

#include <string>

#include "absl/strings/match.h"
#include "google/protobuf/descriptor.h"

namespace computevoucher::core {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

// The first id `m` names: its first singular string field called *_id
// (request_id aside) that is set, looking one level into message fields
// (CreateTokenResponse.token, SettleProviderResponse.provider, a command's
// request); empty when none is.
std::string FirstId(const Message& m, int depth) {
  const google::protobuf::Descriptor* d = m.GetDescriptor();
  const google::protobuf::Reflection* r = m.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->is_repeated()) continue;
    if (f->type() == FieldDescriptor::TYPE_STRING &&
        absl::EndsWith(f->name(), "_id") && f->name() != "request_id") {
      std::string id = r->GetString(m, f);
      if (!id.empty()) return id;
    }
    if (f->type() == FieldDescriptor::TYPE_MESSAGE && depth > 0 &&
        r->HasField(m, f)) {
      std::string id = FirstId(r->GetMessage(m, f), depth - 1);
      if (!id.empty()) return id;
    }
  }
  return "";
}

}  // namespace

std::optional<pb::AuditEvent> AuditEventOf(const pb::Command& command,
                                           const Message* response) {
  switch (command.body_case()) {
    case pb::Command::kTick:
    case pb::Command::kHeartbeat:
    case pb::Command::kReportUsage:
    case pb::Command::BODY_NOT_SET:
      return std::nullopt;
    default:
      break;
  }
  const FieldDescriptor* body =
      pb::Command::GetDescriptor()->FindFieldByNumber(command.body_case());
  pb::AuditEvent event;
  event.set_sequence(command.sequence());
  *event.mutable_time() = command.time();
  *event.mutable_principal() = command.principal();
  // A revocation is one method, however it was logged.
  event.set_method(command.has_revoke_token_recorded()
                       ? std::string("revoke_token")
                       : body->name());
  event.set_request_id(command.request_id());
  // What it created or acted on, as the answer names it (a new voucher's
  // id), else as the request does.
  if (response != nullptr) event.set_object_id(FirstId(*response, 1));
  if (event.object_id().empty()) {
    event.set_object_id(
        FirstId(command.GetReflection()->GetMessage(command, body), 1));
  }
  return event;
}

}  // namespace computevoucher::core
