// Readiness for systemd's Type=notify units: the sd_notify protocol (one
// datagram to the socket NOTIFY_SOCKET names), written here rather than
// linking libsystemd for one sendto.
#ifndef COMPUTEVOUCHER_COMMON_NOTIFY_H_
#define COMPUTEVOUCHER_COMMON_NOTIFY_H_

#include "absl/strings/string_view.h"

namespace computevoucher {

// Sends `state` ("READY=1", "STOPPING=1", "STATUS=...", lines joined by
// '\n') to systemd when NOTIFY_SOCKET is set (a path, or an abstract
// socket as "@name"); returns whether it was sent. Without NOTIFY_SOCKET,
// or when sending fails, nothing happens: readiness is a courtesy, never
// a reason to stop.
bool NotifySystemd(absl::string_view state);

}  // namespace computevoucher

#endif  // COMPUTEVOUCHER_COMMON_NOTIFY_H_
