#include "tests/testing/binaries.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/config.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/byte_buffer.h"
#include "gtest/gtest.h"

extern char** environ;

namespace computevoucher::testing {

std::string BuildDir() {
  const char* dir = std::getenv("CV_BUILD_DIR");
  return dir != nullptr ? dir : ".";
}

bool PollUntil(const std::function<bool()>& condition, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (condition()) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
}

int RunToFiles(std::vector<std::string> argv, std::vector<std::string> env,
               const std::string& in, const std::string& out,
               const std::string& err) {
  std::vector<char*> argp, envp;
  for (std::string& a : argv) argp.push_back(a.data());
  argp.push_back(nullptr);
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, in.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = -1;
  int exit_code = -1;
  if (posix_spawn(&pid, argp[0], &actions, nullptr, argp.data(), envp.data()) ==
      0) {
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status)) exit_code = WEXITSTATUS(status);
  }
  posix_spawn_file_actions_destroy(&actions);
  return exit_code;
}

int Shell(const std::string& command) {
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

ChildProcess::ChildProcess(std::vector<std::string> argv, std::string log_path,
                           std::vector<std::string> env)
    : log_path_(std::move(log_path)) {
  std::vector<std::string> environment;
  for (char** e = environ; *e != nullptr; ++e) environment.emplace_back(*e);
  environment.insert(environment.end(), env.begin(), env.end());
  std::vector<char*> args, envp;
  for (std::string& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  for (std::string& e : environment) envp.push_back(e.data());
  envp.push_back(nullptr);
  const int log =
      open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  EXPECT_GE(log, 0) << log_path_;
  pid_ = fork();
  if (pid_ == 0) {
    dup2(log, 1);
    dup2(log, 2);
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
  close(log);
  EXPECT_GT(pid_, 0);
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !exit_code_) {
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
}

void ChildProcess::Reaped(int status) {
  exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool ChildProcess::Running() {
  if (exit_code_) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    Reaped(status);
    return false;
  }
  return true;
}

void ChildProcess::Signal(int signal) {
  if (!exit_code_) kill(pid_, signal);
}

int ChildProcess::Stop(int signal) {
  if (exit_code_) return *exit_code_;
  kill(pid_, signal);
  int status = 0;
  waitpid(pid_, &status, 0);
  Reaped(status);
  return *exit_code_;
}

std::optional<int> ChildProcess::Wait(absl::Duration timeout) {
  PollUntil([this] { return !Running(); }, timeout);
  return exit_code_;
}

std::string ChildProcess::Log() const {
  absl::StatusOr<std::string> log = ReadFile(log_path_);
  return log.ok() ? *log : "";
}

bool MakeTestCertificates(const std::string& dir) {
  const std::string quiet = " > /dev/null 2>&1";
  if (Shell("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "
            "/CN=test-ca -keyout " +
            dir + "/ca.key -out " + dir + "/ca.pem" + quiet) != 0) {
    return false;
  }
  std::ofstream(dir + "/san.cnf") << "subjectAltName=IP:127.0.0.1\n";
  for (const std::string name : {"server", "client"}) {
    const std::string base = dir + "/" + name;
    if (Shell("openssl req -newkey rsa:2048 -nodes -subj /CN=" + name +
              " -keyout " + base + ".key -out " + base + ".csr" + quiet) != 0 ||
        Shell("openssl x509 -req -days 2 -in " + base + ".csr -CA " + dir +
              "/ca.pem -CAkey " + dir + "/ca.key -CAcreateserial -extfile " +
              dir + "/san.cnf -out " + base + ".pem" + quiet) != 0) {
      return false;
    }
  }
  return true;
}

int WaitForPortFile(ChildProcess& child, const std::string& port_file,
                    absl::Duration timeout) {
  int port = 0;
  const bool ok = PollUntil(
      [&] {
        absl::StatusOr<std::string> text = ReadFile(port_file);
        if (text.ok() &&
            absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &port) &&
            port > 0) {
          return true;
        }
        return !child.Running();
      },
      timeout);
  if (!ok || port <= 0) {
    ADD_FAILURE() << "no port in " << port_file << "; log:\n" << child.Log();
    return 0;
  }
  return port;
}

// "127.0.0.1:PORT" where nothing listens: a port bound and closed again.
std::string DeadAddress() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(addr);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length), 0);
  close(fd);
  return absl::StrCat("127.0.0.1:", ntohs(addr.sin_port));
}

std::string HealthStatus(const std::string& address) {
  // Without health.proto: the request names no service (an empty message),
  // and the answer is field 1, a varint enum (1 SERVING, 2 NOT_SERVING).
  grpc::GenericStub stub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  grpc::Slice empty("");
  grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer response;
  grpc::Status status;
  absl::Notification done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(),
                 &request, &response, [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  if (!status.ok()) return status.error_message();
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return "unreadable answer";
  std::string bytes;
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  if (bytes == std::string("\x08\x01", 2)) return "SERVING";
  if (bytes == std::string("\x08\x02", 2)) return "NOT_SERVING";
  return "unexpected answer";
}

}  // namespace computevoucher::testing
