#include "scheduler/api/service_base.h"

#include <utility>

#include "absl/strings/numbers.h"

namespace cv::api {

absl::StatusOr<int64_t> PageSize(const pb::PageRequest& page) {
  const int64_t size = page.page_size() == 0 ? 100 : page.page_size();
  if (absl::Status s = CheckRange("page.page_size", size, 1, 1000); !s.ok())
    return s;
  return size;
}

absl::StatusOr<int64_t> NumericPageToken(const pb::PageRequest& page) {
  int64_t position = 0;
  if (!page.page_token().empty() &&
      !absl::SimpleAtoi(page.page_token(), &position)) {
    return absl::InvalidArgumentError(
        "page.page_token: not a token this server issued");
  }
  return position;
}

absl::StatusOr<Window> RequiredPeriod(const google::protobuf::Timestamp& start,
                                      const google::protobuf::Timestamp& end) {
  absl::StatusOr<absl::Time> from = FromProto("period_start", start);
  if (!from.ok()) return from.status();
  absl::StatusOr<absl::Time> until = FromProto("period_end", end);
  if (!until.ok()) return until.status();
  const Window window{*from, *until};
  if (absl::Status s = ValidateWindow("period_start", "period_end", window);
      !s.ok())
    return s;
  return window;
}

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
  absl::StatusOr<std::shared_ptr<store::Writer>> writer = ServingWriter();
  if (!writer.ok()) return writer.status();
  absl::StatusOr<pb::Principal> caller =
      (*writer)->ReadApplied([&](const core::StateMachine& state) {
        return Authenticate(context, state);
      });
  if (!caller.ok()) return caller.status();
  if (absl::Status s = RequireRole(*caller, roles); !s.ok()) return s;
  return caller;
}

absl::StatusOr<std::shared_ptr<store::Writer>> ServiceBase::ServingWriter()
    const {
  absl::StatusOr<std::shared_ptr<store::Writer>> writer =
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
  absl::StatusOr<std::shared_ptr<store::Writer>> writer =
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

}  // namespace cv::api
