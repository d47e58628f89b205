#include "agent/internal/bwrap.h"

#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace computevoucher::agent::internal {
namespace {

// The host's system directories, mirrored read-only where the host has
// them.
constexpr const char* kSystemPaths[] = {"/usr",    "/bin",   "/sbin",
                                        "/lib",    "/lib32", "/lib64",
                                        "/libx32", "/etc",   "/opt"};

// PATH when the agent has none (execvp's default, minus the cwd).
constexpr char kDefaultSearchPath[] = "/usr/local/bin:/usr/bin:/bin";

bool IsExecutableFile(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
         access(path.c_str(), X_OK) == 0;
}

// A symlink stays a symlink (merged /usr: /bin -> usr/bin), so that paths
// through it resolve inside the sandbox as they do outside.
void AddSystemPath(const char* path, std::vector<std::string>& args) {
  struct stat st;
  if (lstat(path, &st) != 0) return;
  if (S_ISLNK(st.st_mode)) {
    char target[PATH_MAX];
    const ssize_t n = readlink(path, target, sizeof(target));
    if (n <= 0 || static_cast<size_t>(n) >= sizeof(target)) return;
    args.insert(args.end(), {"--symlink", std::string(target, n), path});
  } else if (S_ISDIR(st.st_mode)) {
    args.insert(args.end(), {"--ro-bind", path, path});
  }
}

// With systemd-resolved, /etc/resolv.conf points into /run, which the
// sandbox does not get; without its target the shared network would have
// no name resolution.
void AddResolvConfTarget(std::vector<std::string>& args) {
  struct stat st;
  if (lstat("/etc/resolv.conf", &st) != 0 || !S_ISLNK(st.st_mode)) return;
  char* real = realpath("/etc/resolv.conf", nullptr);
  if (real == nullptr) return;
  const std::string target = real;
  std::free(real);
  if (absl::StartsWith(target, "/etc/")) return;
  args.insert(args.end(), {"--ro-bind-try", target, target});
}

std::optional<pid_t> ParseChildPid(const std::string& info) {
  constexpr char kKey[] = "\"child-pid\":";
  const size_t at = info.find(kKey);
  if (at == std::string::npos) return std::nullopt;
  absl::string_view rest = absl::StripLeadingAsciiWhitespace(
      absl::string_view(info).substr(at + sizeof(kKey) - 1));
  size_t digits = 0;
  while (digits < rest.size() && absl::ascii_isdigit(rest[digits])) ++digits;
  int pid = 0;
  if (!absl::SimpleAtoi(rest.substr(0, digits), &pid) || pid <= 1) {
    return std::nullopt;
  }
  return pid;
}

}  // namespace

absl::StatusOr<std::string> FindExecutable(const std::string& name,
                                           absl::string_view field) {
  if (name.find('/') != std::string::npos) {
    if (IsExecutableFile(name)) return name;
    return absl::FailedPreconditionError(
        absl::StrCat(field, ": ", name, ": not an executable file"));
  }
  const char* path_env = std::getenv("PATH");
  const std::string search_path =
      path_env != nullptr ? path_env : kDefaultSearchPath;
  for (absl::string_view dir : absl::StrSplit(search_path, ':')) {
    // Relative entries would depend on the agent's cwd.
    if (!absl::StartsWith(dir, "/")) continue;
    std::string candidate = absl::StrCat(dir, "/", name);
    if (IsExecutableFile(candidate)) return candidate;
  }
  return absl::FailedPreconditionError(
      absl::StrCat(field, ": ", name, " not found in PATH ", search_path));
}

std::vector<std::string> BwrapArgv(
    const std::string& bwrap, const SandboxSpec& sandbox,
    const std::vector<std::pair<std::string, std::string>>& env,
    const std::vector<std::string>& command) {
  // --unshare-user is implied for an unprivileged bwrap, but
  // --disable-userns wants it spelt out.
  std::vector<std::string> args = {
      bwrap,           "--unshare-all",    "--unshare-user",
      "--share-net",   "--disable-userns", "--die-with-parent",
      "--new-session", "--info-fd",        absl::StrCat(kBwrapInfoFd)};
  for (const char* path : kSystemPaths) AddSystemPath(path, args);
  AddResolvConfTarget(args);
  args.insert(args.end(),
              {"--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"});
  // Mounted after /dev and /tmp, which would hide what lies below them.
  for (const std::string& device : sandbox.device_files) {
    args.insert(args.end(), {"--dev-bind", device, device});
  }
  args.insert(args.end(), {"--bind", sandbox.work_dir, sandbox.work_dir,
                           "--chdir", sandbox.work_dir, "--clearenv"});
  for (const auto& [name, value] : env) {
    args.insert(args.end(), {"--setenv", name, value});
  }
  args.insert(args.end(), {"--setenv", "HOME", sandbox.work_dir, "--setenv",
                           "PATH", kSandboxPath});
  // A shell between bwrap and the command: it closes the started pipe,
  // and a command that cannot be executed ends it with 127 (126 when found
  // but not executable), where bwrap would exit 1 like any workload.
  args.insert(
      args.end(),
      {"--", "/bin/sh", "-c",
       absl::StrCat("exec ", kBwrapStartedFd, ">&-; exec \"$@\""), "sh"});
  args.insert(args.end(), command.begin(), command.end());
  return args;
}

BwrapStartup::~BwrapStartup() {
  if (fd_ >= 0) close(fd_);
}

std::optional<pid_t> BwrapStartup::WorkloadGroup() {
  if (fd_ < 0) return group_;
  char buf[512];
  for (;;) {
    const ssize_t n = read(fd_, buf, sizeof(buf));
    if (n > 0) {
      info_.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return std::nullopt;
    }
    break;  // End of file (or a broken pipe): every writer is done.
  }
  close(fd_);
  fd_ = -1;
  group_ = ParseChildPid(info_);
  return group_;
}

}  // namespace computevoucher::agent::internal
