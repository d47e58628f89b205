// The API's answers as JSON and YAML for programs and people who read
// them: the protobuf JSON mapping (field names as in the .proto files,
// enums by name, times in RFC 3339 UTC, every scalar field present), except
// that 64-bit integers (money in fen) are numbers, not strings, and bytes
// (hashes) are lowercase hex, as tables show them, not base64.
#ifndef COMPUTEVOUCHER_CLIENT_INTERNAL_STRUCTURED_H_
#define COMPUTEVOUCHER_CLIENT_INTERNAL_STRUCTURED_H_

#include <string>

#include "google/protobuf/message.h"

namespace computevoucher::client {

// `message` as JSON: indented by two spaces, or on one line when
// `one_line`. No line end.
std::string ToJson(const google::protobuf::Message& message, bool one_line);

// `message` as a YAML block mapping, ending with a line end. Strings that
// YAML could read as another type, or that hold special characters, are
// double-quoted.
std::string ToYaml(const google::protobuf::Message& message);

}  // namespace computevoucher::client

#endif  // COMPUTEVOUCHER_CLIENT_INTERNAL_STRUCTURED_H_
