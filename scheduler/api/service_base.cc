#include "scheduler/api/service_base.h"

#include <utility>

namespace computevoucher::api {

absl::StatusOr<pb::Principal> ServiceBase::Caller(
    const grpc::ServerContext& context,
    std::initializer_list<pb::Role> roles) const {
  // Every handler starts here: once a graceful stop has begun, a new call
  // is refused before it does anything, while the calls already past this
  // point finish (the server waits for them).
  if (ctx_.calls != nullptr && ctx_.calls->draining()) {
    return absl::UnavailableError(
        "the scheduler is stopping; retry with the same request_id (another "
        "replica answers, or this one after its restart)");
  }
  absl::StatusOr<std::shared_ptr<engine::Writer>> writer = ServingWriter();
  if (!writer.ok()) return writer.status();
  const absl::Time now = ctx_.clock->Now();
  absl::StatusOr<pb::Principal> caller = (*writer)->ReadApplied(
      [&](const core::StateMachine& state) -> absl::StatusOr<pb::Principal> {
        absl::StatusOr<const pb::Token*> token =
            Authenticate(context, state, now);
        if (!token.ok()) return token.status();
        if (ctx_.token_uses != nullptr) ctx_.token_uses->Seen(**token, now);
        return PrincipalOf(**token, context.peer());
      });
  if (!caller.ok()) return caller.status();
  if (absl::Status s = RequireRole(*caller, roles); !s.ok()) return s;
  return caller;
}

absl::StatusOr<std::shared_ptr<engine::Writer>> ServiceBase::ServingWriter()
    const {
  absl::StatusOr<std::shared_ptr<engine::Writer>> writer =
      ctx_.replica->writer();
  if (!writer.ok()) return writer.status();
  if ((*writer)->failed()) {
    return absl::UnavailableError(
        "the scheduler's store failed and its state could not be rebuilt; "
        "it serves nothing until restarted");
  }
  return writer;
}

absl::StatusOr<core::Outcome> ServiceBase::Submit(
    const pb::Principal& caller, const std::string& request_id,
    const std::function<void(pb::Command&)>& fill) {
  pb::Command command;
  *command.mutable_principal() = caller;
  command.set_request_id(request_id);
  fill(command);
  absl::StatusOr<std::shared_ptr<engine::Writer>> writer =
      ctx_.replica->writer();
  if (!writer.ok()) return writer.status();
  return (*writer)->Submit(std::move(command));
}

absl::Status ServiceBase::CopyResponse(const core::Outcome& outcome,
                                       google::protobuf::Message* out) {
  if (outcome.response == nullptr ||
      outcome.response->GetDescriptor() != out->GetDescriptor()) {
    return absl::InternalError(
        "the scheduler answered with an unexpected message");
  }
  out->CopyFrom(*outcome.response);
  return absl::OkStatus();
}

reports::Sources ServiceBase::ReportSources() const {
  reports::Sources sources;
  sources.read_state =
      [this](const std::function<void(const core::StateMachine&)>& fn) {
        absl::StatusOr<bool> read = ReadState([&](const core::StateMachine& s) {
          fn(s);
          return true;
        });
        return read.status();
      };
  sources.usage = ctx_.usage;
  sources.log = ctx_.log;
  sources.retired = ctx_.retired;
  sources.archived = ctx_.archived;
  return sources;
}

}  // namespace computevoucher::api
