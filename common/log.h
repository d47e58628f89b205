// The servers' log lines, one convention for both: "<program>: <message>"
// on standard error, after the time unless standard error is the systemd
// journal, which stamps every line itself.
#ifndef COMPUTEVOUCHER_COMMON_LOG_H_
#define COMPUTEVOUCHER_COMMON_LOG_H_

#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace computevoucher {

// Writes one line, at once (no other thread's line is mixed in):
// "2026-12-06T22:33:48.123+08:00 voucher-agent: message", the time in the
// local time zone, left out when stderr is the journal (JOURNAL_STREAM
// names stderr's device and inode).
void LogLine(absl::string_view program, absl::string_view message);

// The line LogLine writes at `now`, with or without the time.
std::string FormatLogLine(absl::string_view program, absl::string_view message,
                          absl::Time now, bool stamped);

// Whether standard error is the systemd journal.
bool StderrIsJournal();

}  // namespace computevoucher

#endif  // COMPUTEVOUCHER_COMMON_LOG_H_
