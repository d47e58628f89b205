// `voucherctl allocations watch -o json` read through a pipe, as a script
// reads it (issue 17): each change arrives as a JSON line while the watch
// still runs, not all of them when it exits.
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <optional>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/voucherctl_fixture.h"

namespace computevoucher::testing {
namespace {

// The lines written into a named pipe, read as they come.
class PipeLines {
 public:
  // Makes the pipe at `path` and opens its reading end, so that a writer
  // opening it does not wait.
  explicit PipeLines(const std::string& path) {
    EXPECT_EQ(mkfifo(path.c_str(), 0600), 0) << path;
    fd_ = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    EXPECT_GE(fd_, 0) << path;
  }
  ~PipeLines() { close(fd_); }
  PipeLines(const PipeLines&) = delete;
  PipeLines& operator=(const PipeLines&) = delete;

  // The next whole line, without its newline; nullopt when none came
  // within `timeout` or the writers closed the pipe first.
  std::optional<std::string> Next(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      if (const size_t end = buffer_.find('\n'); end != std::string::npos) {
        std::string line = buffer_.substr(0, end);
        buffer_.erase(0, end + 1);
        return line;
      }
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, absl::ToInt64Milliseconds(left) + 1) < 1) continue;
      char chunk[4096];
      const ssize_t n = read(fd_, chunk, sizeof(chunk));
      if (n == 0) return std::nullopt;
      if (n > 0) buffer_.append(chunk, n);
    }
  }

 private:
  int fd_ = -1;
  std::string buffer_;
};

TEST_F(VoucherctlTest, WatchWritesEachChangeToAPipeAsItHappens) {
  const std::string enterprise = BuildWorld();
  const AgentClient agent = ApprovedCluster(2'000);
  ASSERT_FALSE(HasFailure());
  const Result allocated =
      As(enterprise, {"allocate", "--model", "H100", "--gpus", "1", "--hours",
                      "1", "-o", "json"});
  ASSERT_EQ(allocated.exit_code, 0) << allocated;
  const std::string id =
      ParseJson<pb::Allocation>(allocated.out).allocation_id();
  ASSERT_FALSE(id.empty()) << allocated;

  // The watch's standard output (and error) is the pipe, as in
  // `voucherctl allocations watch ... -o json | jq`.
  PipeLines lines(dir_ + "/watch.pipe");
  ChildProcess watch({BuildDir() + "/client/voucherctl", "--endpoint",
                      endpoint_, "--token", enterprise, "allocations", "watch",
                      id, "-o", "json", "--interval", "100ms"},
                     dir_ + "/watch.pipe");
  pb::Allocation last;
  auto next = [&](pb::AllocationState state) {
    const std::optional<std::string> line = lines.Next(absl::Seconds(30));
    ASSERT_TRUE(line.has_value())
        << "no line for " << pb::AllocationState_Name(state)
        << " while the watch runs: not flushed?";
    last = ParseJson<pb::Allocation>(*line);
    EXPECT_EQ(last.allocation_id(), id) << *line;
    EXPECT_EQ(last.state(), state) << *line;
  };
  ASSERT_NO_FATAL_FAILURE(next(pb::ALLOCATION_STATE_ASSIGNED));
  EXPECT_TRUE(watch.Running());

  // The agent starts it: the next line, the watch still running.
  pb::HeartbeatRequest beat;
  beat.set_request_id("beat-1");
  pb::ObservedAllocation* o = beat.add_allocations();
  o->set_allocation_id(id);
  o->set_running(true);
  pb::HeartbeatResponse desired;
  ASSERT_TRUE(
      agent.Call(&pb::AgentService::Stub::Heartbeat, beat, &desired).ok());
  ASSERT_NO_FATAL_FAILURE(next(pb::ALLOCATION_STATE_RUNNING));
  EXPECT_TRUE(watch.Running());

  // Released: the last line, and the watch ends by itself.
  ASSERT_EQ(As(enterprise, {"allocations", "release", id}).exit_code, 0);
  ASSERT_NO_FATAL_FAILURE(next(pb::ALLOCATION_STATE_ENDED));
  EXPECT_EQ(last.end_reason(), pb::END_REASON_RELEASED);
  EXPECT_EQ(watch.Wait(absl::Seconds(30)), 0);
  EXPECT_EQ(lines.Next(absl::Seconds(5)), std::nullopt);
}

}  // namespace
}  // namespace computevoucher::testing
