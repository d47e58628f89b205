// What a command handler of the state machine's components answers.
#ifndef COMPUTEVOUCHER_SCHEDULER_CORE_RESPONSE_H_
#define COMPUTEVOUCHER_SCHEDULER_CORE_RESPONSE_H_

#include <memory>
#include <utility>

#include "google/protobuf/message.h"

namespace computevoucher::core {

// The response message of the RPC a command came from.
using Response = std::shared_ptr<const google::protobuf::Message>;

template <typename T>
Response Share(T message) {
  return std::make_shared<const T>(std::move(message));
}

// The answer of a handler that may accept its command without changing
// anything (a retry, a tick with nothing due): such a command need not be
// logged.
struct Reply {
  Response response;
  bool changed = true;
};

}  // namespace computevoucher::core

#endif  // COMPUTEVOUCHER_SCHEDULER_CORE_RESPONSE_H_
