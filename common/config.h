// Reading textproto configuration files and secrets.
#ifndef COMPUTEVOUCHER_COMMON_CONFIG_H_
#define COMPUTEVOUCHER_COMMON_CONFIG_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"

namespace computevoucher {

// Reads the whole file. NotFound or PermissionDenied with the path and the
// system's reason.
absl::StatusOr<std::string> ReadFile(const std::string& path);

// Writes `contents` to a new file readable only by its owner (mode 0600).
// AlreadyExists when the file exists; nothing is left behind on error.
absl::Status WritePrivateFile(const std::string& path,
                              const std::string& contents);

// Parses textproto `text` into `message`. InvalidArgument naming `name`
// (the file), the line and column of the first error.
absl::Status ParseTextProto(absl::string_view name, const std::string& text,
                            google::protobuf::Message* message);

// Parses the textproto file at `path` into `message`. InvalidArgument
// naming the file, line and column of the first error.
absl::Status LoadTextProto(const std::string& path,
                           google::protobuf::Message* message);

}  // namespace computevoucher

#endif  // COMPUTEVOUCHER_COMMON_CONFIG_H_
