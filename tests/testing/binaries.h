// The project's real binaries as child processes, for end-to-end tests:
// start with arguments and environment, output to a log file, signals, and
// polling with a deadline.
#ifndef COMPUTEVOUCHER_TESTS_TESTING_BINARIES_H_
#define COMPUTEVOUCHER_TESTS_TESTING_BINARIES_H_

#include <signal.h>
#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace computevoucher::testing {

// The build directory (CTest sets CV_BUILD_DIR; "." otherwise).
std::string BuildDir();

// Calls `condition` every 20 ms until it returns true or `timeout` passes;
// returns its last result.
bool PollUntil(const std::function<bool()>& condition,
               absl::Duration timeout = absl::Seconds(30));

// Runs `command` through /bin/sh; returns its exit code (-1 if signalled).
int Shell(const std::string& command);

// Runs argv[0] (a path) with `argv` and exactly the environment `env`
// ("NAME=value"), standard input read from file `in` and its output written
// to files `out` and `err`, and waits for it; returns its exit code (-1 when
// it could not start or was signalled).
int RunToFiles(std::vector<std::string> argv, std::vector<std::string> env,
               const std::string& in, const std::string& out,
               const std::string& err);

class ChildProcess {
 public:
  // Starts argv[0] (a path) with `argv`, the test's environment plus `env`
  // ("NAME=value"), and stdout and stderr appended to `log_path`.
  ChildProcess(std::vector<std::string> argv, std::string log_path,
               std::vector<std::string> env = {});
  // SIGKILLs and reaps the process if it still runs.
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Whether the process still runs (reaps it when it has exited).
  bool Running();
  // The exit code once exited: its status, or 128 + the signal.
  std::optional<int> exit_code() const { return exit_code_; }
  // Sends `signal` without waiting.
  void Signal(int signal);
  // Sends `signal` and waits for the exit; returns the exit code.
  int Stop(int signal = SIGTERM);
  // Waits up to `timeout` for the process to exit by itself.
  std::optional<int> Wait(absl::Duration timeout);
  // Everything the process wrote so far.
  std::string Log() const;
  const std::string& log_path() const { return log_path_; }

 private:
  void Reaped(int status);
  pid_t pid_ = -1;
  std::string log_path_;
  std::optional<int> exit_code_;
};

// Makes, with openssl, a CA and certificates signed by it for TLS tests in
// `dir`: ca.pem, server.pem/server.key (for IP 127.0.0.1) and
// client.pem/client.key. Returns whether every step succeeded.
bool MakeTestCertificates(const std::string& dir);

// Waits for `child` to write a positive port number to `port_file`; 0 (and
// a test failure with the child's log) when it exits first or times out.
int WaitForPortFile(ChildProcess& child, const std::string& port_file,
                    absl::Duration timeout = absl::Seconds(30));

// "127.0.0.1:PORT" where nothing listens: a port bound and closed again.
std::string DeadAddress();

// The answer of the standard gRPC health service (grpc.health.v1) at
// `address` for the whole server: "SERVING", "NOT_SERVING", or the error.
std::string HealthStatus(const std::string& address);

}  // namespace computevoucher::testing

#endif  // COMPUTEVOUCHER_TESTS_TESTING_BINARIES_H_
