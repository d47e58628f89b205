// The bubblewrap sandbox of the `process` runtime: where a workload runs
// and as whom (see agent/workload.h for how it is started).
//
// A sandboxed workload runs as an unprivileged user, in its own user, pid,
// mount, IPC, UTS and cgroup namespaces, and sees:
//   - the system read-only: /usr, /etc, /bin, /sbin, /lib*, /opt (those the
//     host has; symlinks such as /bin -> usr/bin are kept as symlinks);
//   - a fresh /proc showing only its own processes;
//   - a minimal /dev (null, zero, random, tty, shm, ...) plus its
//     allocation's device files, bound at the same paths;
//   - a private tmpfs /tmp;
//   - its working directory, read-write: its cwd and HOME;
// and nothing else of the host: not the agent's spool, token file or logs,
// not /root, /home, /var, /run, /sys, nor other allocations' working
// directories. The network namespace is shared with the host on purpose:
// tenants fetch data and checkpoints, and GPU jobs across nodes talk to
// each other. It may not create further user namespaces.
//
// Functions here are thread-safe.
#ifndef COMPUTEVOUCHER_AGENT_SANDBOX_H_
#define COMPUTEVOUCHER_AGENT_SANDBOX_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "computevoucher/v1/config.pb.h"

namespace computevoucher::agent {

namespace pb = ::computevoucher::v1;

// Where and as whom one workload runs.
struct SandboxSpec {
  // The bubblewrap binary; looked up in the agent's PATH when it has no '/'.
  std::string bwrap_path = "bwrap";
  // The unprivileged user and group the workload runs as; never 0.
  uid_t uid = 0;
  gid_t gid = 0;
  // Absolute; the workload's working directory (read-write, its cwd and
  // HOME). Its parent directories must be searchable by `uid`.
  std::string work_dir;
  // Absolute paths of the device files the workload may use, bound at the
  // same path (and readable by `uid` on the host).
  std::vector<std::string> device_files;
};

// The `process` runtime's settings, checked, with defaults applied.
struct ProcessSettings {
  // false for `sandbox: "none"`: workloads run unsandboxed as the agent's
  // own user; the other fields are then unset.
  bool sandboxed = true;
  std::string bwrap_path;
  uid_t uid = 0;
  gid_t gid = 0;
  // Absolute.
  std::string work_root;
  // Absolute, with one "%d" standing for the GPU index.
  std::string gpu_device_pattern;
  std::vector<std::string> shared_devices;
};

// Checks `config` and resolves its user (a name or a uid) against the
// host's user database; `default_work_root` stands for an empty
// `work_root`. Creates nothing. Errors, naming the field (`process.…`) and
// the value: InvalidArgument for an unknown `sandbox`, a missing, unknown
// or root `run_as_user` (uid or primary group 0), a `run_as_user` with
// `sandbox: "none"`, a relative `work_root` or device path, a
// `gpu_device_pattern` without exactly one "%d"; FailedPrecondition when
// `bwrap_path` cannot be found or executed.
absl::StatusOr<ProcessSettings> ResolveProcessSettings(
    const pb::ProcessRuntimeConfig& config,
    absl::string_view default_work_root);

// The sandbox of allocation `allocation_id` on GPUs `gpu_indices`, nullopt
// when `runtime` is unsandboxed. Its device files are the pattern's for
// each index plus the shared devices that exist. Creates `work_root`
// (mode 0711) when missing, and the working directory
// `<work_root>/<allocation_id>`, owned by the user, mode 0700; an existing
// one (the allocation restarted) is kept with its contents and given the
// same owner and mode. Errors: InvalidArgument for an `allocation_id`
// that is not a plain file name; FailedPrecondition for a GPU device file
// that is missing or not a character device, a shared device that is not
// one, or a working directory that is not a directory; Internal when a
// directory cannot be created or changed.
absl::StatusOr<std::optional<SandboxSpec>> PrepareSandbox(
    const ProcessSettings& runtime, absl::string_view allocation_id,
    const std::vector<int>& gpu_indices);

}  // namespace computevoucher::agent

#endif  // COMPUTEVOUCHER_AGENT_SANDBOX_H_
