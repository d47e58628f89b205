#include "agent/sandbox.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "agent/internal/bwrap.h"
#include "common/status_macros.h"

namespace computevoucher::agent {
namespace {

constexpr char kSandboxBwrap[] = "bwrap";
constexpr char kSandboxNone[] = "none";
constexpr char kDefaultBwrapPath[] = "bwrap";
constexpr char kDefaultGpuDevicePattern[] = "/dev/nvidia%d";
constexpr const char* kDefaultSharedDevices[] = {
    "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"};
constexpr char kGpuIndexPlaceholder[] = "%d";

struct User {
  uid_t uid;
  gid_t gid;
};

// `name_or_uid`: a user name, or a uid (all digits) that must have an
// entry too, for its group.
absl::StatusOr<User> LookUpUser(const std::string& name_or_uid) {
  const bool is_uid =
      !name_or_uid.empty() && absl::c_all_of(name_or_uid, absl::ascii_isdigit);
  uint32_t uid = 0;
  if (is_uid && !absl::SimpleAtoi(name_or_uid, &uid)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "process.run_as_user: uid out of range, got ", name_or_uid));
  }
  std::vector<char> buf(16384);
  struct passwd pw;
  struct passwd* found = nullptr;
  int err;
  while (true) {
    err = is_uid ? getpwuid_r(uid, &pw, buf.data(), buf.size(), &found)
                 : getpwnam_r(name_or_uid.c_str(), &pw, buf.data(), buf.size(),
                              &found);
    if (err != ERANGE || buf.size() > (1u << 24)) break;
    buf.resize(buf.size() * 2);
  }
  if (found == nullptr) {
    if (err != 0 && err != ENOENT && err != ESRCH) {
      return absl::InternalError(
          absl::StrCat("process.run_as_user: cannot look up ", name_or_uid,
                       ": ", std::strerror(err)));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("process.run_as_user: no such user: ", name_or_uid));
  }
  if (pw.pw_uid == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("process.run_as_user: must not be root, got ", name_or_uid,
                     " (uid 0)"));
  }
  if (pw.pw_gid == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("process.run_as_user: must not be in group root, got ",
                     name_or_uid, " (primary gid 0)"));
  }
  return User{pw.pw_uid, pw.pw_gid};
}

absl::Status CheckAbsolute(absl::string_view field, const std::string& path) {
  if (absl::StartsWith(path, "/")) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": must be an absolute path, got \"", path, "\""));
}

absl::Status CheckGpuDevicePattern(const std::string& pattern) {
  RETURN_IF_ERROR(CheckAbsolute("process.gpu_device_pattern", pattern));
  const size_t at = pattern.find(kGpuIndexPlaceholder);
  const std::string rest =
      at == std::string::npos
          ? pattern
          : absl::StrCat(pattern.substr(0, at), pattern.substr(at + 2));
  if (at == std::string::npos || absl::StrContains(rest, '%')) {
    return absl::InvalidArgumentError(absl::StrCat(
        "process.gpu_device_pattern: must contain \"%d\" once and no other "
        "'%', got \"",
        pattern, "\""));
  }
  return absl::OkStatus();
}

// Creates `root` with mode 0711 when missing: the user must cross it to
// its own directory, not list the others'.
absl::Status MakeWorkRoot(const std::string& root) {
  std::error_code ec;
  const bool created = std::filesystem::create_directories(root, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("process.work_root ", root,
                                            ": cannot create: ", ec.message()));
  }
  if (created && chmod(root.c_str(), 0711) != 0) {
    return absl::InternalError(absl::StrCat("process.work_root ", root,
                                            ": chmod: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

// Through a descriptor opened without following symlinks: a directory
// kept from an earlier run holds what the user wrote, and a symlink there
// must not make the agent chown something else.
absl::Status MakeOwnedDir(const std::string& dir, uid_t uid, gid_t gid) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::InternalError(absl::StrCat(
        "working directory ", dir, ": cannot create: ", std::strerror(errno)));
  }
  const int fd =
      open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ELOOP || errno == ENOTDIR) {
      return absl::FailedPreconditionError(
          absl::StrCat("working directory ", dir, ": not a directory"));
    }
    return absl::InternalError(absl::StrCat(
        "working directory ", dir, ": cannot open: ", std::strerror(errno)));
  }
  const bool ok = fchown(fd, uid, gid) == 0 && fchmod(fd, 0700) == 0;
  const int saved_errno = errno;
  close(fd);
  if (!ok) {
    return absl::InternalError(absl::StrCat("working directory ", dir,
                                            ": cannot give it to uid ", uid,
                                            ": ", std::strerror(saved_errno)));
  }
  return absl::OkStatus();
}

// Whether `path` is a character device; FailedPrecondition naming `what`
// when it exists as something else, NotFound when it does not exist.
absl::Status CheckCharacterDevice(const std::string& path,
                                  absl::string_view what) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    const std::string message =
        absl::StrCat(what, ": ", path, ": ", std::strerror(errno));
    return errno == ENOENT ? absl::NotFoundError(message)
                           : absl::FailedPreconditionError(message);
  }
  if (!S_ISCHR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": ", path, ": not a character device"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ProcessSettings> ResolveProcessSettings(
    const pb::ProcessRuntimeConfig& config,
    absl::string_view default_work_root) {
  ProcessSettings runtime;
  if (config.sandbox() == kSandboxNone) {
    if (!config.run_as_user().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "process.run_as_user: needs process.sandbox \"bwrap\", got ",
          config.run_as_user(), " with sandbox \"none\""));
    }
    runtime.sandboxed = false;
    return runtime;
  }
  if (!config.sandbox().empty() && config.sandbox() != kSandboxBwrap) {
    return absl::InvalidArgumentError(
        absl::StrCat("process.sandbox: must be \"bwrap\" or \"none\", got \"",
                     config.sandbox(), "\""));
  }
  if (config.run_as_user().empty()) {
    return absl::InvalidArgumentError(
        "process.run_as_user: required with process.sandbox \"bwrap\", got "
        "none");
  }
  ASSIGN_OR_RETURN(const User user, LookUpUser(config.run_as_user()));
  runtime.uid = user.uid;
  runtime.gid = user.gid;

  runtime.bwrap_path =
      config.bwrap_path().empty() ? kDefaultBwrapPath : config.bwrap_path();
  RETURN_IF_ERROR(
      internal::FindExecutable(runtime.bwrap_path, "process.bwrap_path")
          .status());

  runtime.work_root = config.work_root().empty()
                          ? std::string(default_work_root)
                          : config.work_root();
  RETURN_IF_ERROR(CheckAbsolute("process.work_root", runtime.work_root));

  runtime.gpu_device_pattern = config.gpu_device_pattern().empty()
                                   ? kDefaultGpuDevicePattern
                                   : config.gpu_device_pattern();
  RETURN_IF_ERROR(CheckGpuDevicePattern(runtime.gpu_device_pattern));

  if (config.shared_devices().empty()) {
    runtime.shared_devices.assign(std::begin(kDefaultSharedDevices),
                                  std::end(kDefaultSharedDevices));
  } else {
    runtime.shared_devices.assign(config.shared_devices().begin(),
                                  config.shared_devices().end());
  }
  for (const std::string& device : runtime.shared_devices) {
    RETURN_IF_ERROR(CheckAbsolute("process.shared_devices", device));
  }
  return runtime;
}

absl::StatusOr<std::optional<SandboxSpec>> PrepareSandbox(
    const ProcessSettings& runtime, absl::string_view allocation_id,
    const std::vector<int>& gpu_indices) {
  if (!runtime.sandboxed) return std::optional<SandboxSpec>();
  if (allocation_id.empty() || allocation_id == "." || allocation_id == ".." ||
      absl::StrContains(allocation_id, '/')) {
    return absl::InvalidArgumentError(absl::StrCat(
        "allocation_id: must be a file name, got \"", allocation_id, "\""));
  }
  SandboxSpec spec;
  spec.bwrap_path = runtime.bwrap_path;
  spec.uid = runtime.uid;
  spec.gid = runtime.gid;

  for (const int index : gpu_indices) {
    std::string device =
        absl::StrReplaceAll(runtime.gpu_device_pattern,
                            {{kGpuIndexPlaceholder, absl::StrCat(index)}});
    const absl::Status status = CheckCharacterDevice(
        device, absl::StrCat("process.gpu_device_pattern: GPU ", index));
    if (!status.ok()) {
      // Missing is a precondition too: the host lacks the allocation's GPU.
      return absl::FailedPreconditionError(status.message());
    }
    spec.device_files.push_back(std::move(device));
  }
  for (const std::string& device : runtime.shared_devices) {
    const absl::Status status =
        CheckCharacterDevice(device, "process.shared_devices");
    if (absl::IsNotFound(status)) continue;
    RETURN_IF_ERROR(status);
    spec.device_files.push_back(device);
  }

  RETURN_IF_ERROR(MakeWorkRoot(runtime.work_root));
  spec.work_dir =
      (std::filesystem::path(runtime.work_root) / std::string(allocation_id))
          .lexically_normal()
          .string();
  RETURN_IF_ERROR(MakeOwnedDir(spec.work_dir, spec.uid, spec.gid));
  return std::optional<SandboxSpec>(std::move(spec));
}

}  // namespace computevoucher::agent
