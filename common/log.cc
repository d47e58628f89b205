#include "common/log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace computevoucher {

bool StderrIsJournal() {
  // systemd sets JOURNAL_STREAM to "DEVICE:INODE" of the stream it connects
  // stderr to; a child whose stderr was redirected elsewhere inherits the
  // variable, so the numbers must match.
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (stream == nullptr) return false;
  const std::vector<std::string> parts = absl::StrSplit(stream, ':');
  uint64_t device = 0;
  uint64_t inode = 0;
  struct stat st;
  return parts.size() == 2 && absl::SimpleAtoi(parts[0], &device) &&
         absl::SimpleAtoi(parts[1], &inode) && fstat(STDERR_FILENO, &st) == 0 &&
         static_cast<uint64_t>(st.st_dev) == device &&
         static_cast<uint64_t>(st.st_ino) == inode;
}

std::string FormatLogLine(absl::string_view program, absl::string_view message,
                          absl::Time now, bool stamped) {
  return absl::StrCat(stamped ? absl::FormatTime("%Y-%m-%dT%H:%M:%E3S%Ez ", now,
                                                 absl::LocalTimeZone())
                              : "",
                      program, ": ", message, "\n");
}

void LogLine(absl::string_view program, absl::string_view message) {
  static const bool journal = StderrIsJournal();
  const std::string line =
      FormatLogLine(program, message, absl::Now(), !journal);
  // One write, so that lines of several threads do not interleave.
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace computevoucher
