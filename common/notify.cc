#include "common/notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace computevoucher {

bool NotifySystemd(absl::string_view state) {
  // Read once and taken out of the environment, so that the processes the
  // agent starts for tenants do not inherit it.
  static const std::string socket_name = [] {
    const char* name = std::getenv("NOTIFY_SOCKET");
    std::string value = name == nullptr ? "" : name;
    unsetenv("NOTIFY_SOCKET");
    return value;
  }();
  if (socket_name.empty()) return false;
  std::string path = socket_name;
  sockaddr_un address;
  std::memset(&address, 0, sizeof(address));
  address.sun_family = AF_UNIX;
  if ((path[0] != '/' && path[0] != '@') ||
      path.size() >= sizeof(address.sun_path)) {
    return false;
  }
  if (path[0] == '@') path[0] = '\0';  // abstract namespace
  std::memcpy(address.sun_path, path.data(), path.size());
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const socklen_t length =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
  const ssize_t sent =
      sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
             reinterpret_cast<const sockaddr*>(&address), length);
  close(fd);
  return sent == static_cast<ssize_t>(state.size());
}

}  // namespace computevoucher
