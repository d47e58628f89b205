#include "scheduler/api/service_base.h"

#include <utility>

namespace cv::api {

absl::StatusOr<pb::Principal> ServiceBase::Caller(
    const grpc::ServerContext& context,
    std::initializer_list<pb::Role> roles) const {
  absl::StatusOr<pb::Principal> caller =
      ctx_.writer->Read([&](const core::StateMachine& state) {
        return Authenticate(context, state);
      });
  if (!caller.ok()) return caller.status();
  if (absl::Status s = RequireRole(*caller, roles); !s.ok()) return s;
  return caller;
}

absl::StatusOr<core::Outcome> ServiceBase::Submit(
    const pb::Principal& caller, const std::string& request_id,
    const std::function<void(pb::Command&)>& fill) {
  pb::Command command;
  *command.mutable_principal() = caller;
  command.set_request_id(request_id);
  fill(command);
  return ctx_.writer->Submit(std::move(command));
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

}  // namespace cv::api
