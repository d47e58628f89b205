#include "agent/sandbox.h"

#include <pwd.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace computevoucher::agent {
namespace {

using ::computevoucher::testing::MakeTempDir;
using ::computevoucher::testing::TempDir;

using ::computevoucher::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

pb::ProcessRuntimeConfig NobodyConfig() {
  pb::ProcessRuntimeConfig config;
  config.set_run_as_user("nobody");
  return config;
}

TEST(ResolveProcessSettings, RefusesBadSettingsNamingFieldAndValue) {
  struct Case {
    std::string name;
    std::function<void(pb::ProcessRuntimeConfig&)> change;
    absl::StatusCode code;
    std::string field;
    std::string value;
  };
  const std::vector<Case> cases = {
      {"root by name", [](auto& c) { c.set_run_as_user("root"); },
       absl::StatusCode::kInvalidArgument, "process.run_as_user", "root"},
      {"root by uid", [](auto& c) { c.set_run_as_user("0"); },
       absl::StatusCode::kInvalidArgument, "process.run_as_user", "0"},
      {"unknown user",
       [](auto& c) { c.set_run_as_user("computevoucher-no-such-user"); },
       absl::StatusCode::kInvalidArgument, "process.run_as_user",
       "computevoucher-no-such-user"},
      {"unknown uid", [](auto& c) { c.set_run_as_user("3999999999"); },
       absl::StatusCode::kInvalidArgument, "process.run_as_user", "3999999999"},
      {"no user", [](auto& c) { c.clear_run_as_user(); },
       absl::StatusCode::kInvalidArgument, "process.run_as_user", "required"},
      {"user without sandbox", [](auto& c) { c.set_sandbox("none"); },
       absl::StatusCode::kInvalidArgument, "process.run_as_user", "nobody"},
      {"unknown sandbox", [](auto& c) { c.set_sandbox("docker"); },
       absl::StatusCode::kInvalidArgument, "process.sandbox", "docker"},
      {"relative work root", [](auto& c) { c.set_work_root("work"); },
       absl::StatusCode::kInvalidArgument, "process.work_root", "\"work\""},
      {"pattern without index",
       [](auto& c) { c.set_gpu_device_pattern("/dev/nvidia"); },
       absl::StatusCode::kInvalidArgument, "process.gpu_device_pattern",
       "/dev/nvidia"},
      {"pattern with two indices",
       [](auto& c) { c.set_gpu_device_pattern("/dev/gpu%d-%d"); },
       absl::StatusCode::kInvalidArgument, "process.gpu_device_pattern",
       "/dev/gpu%d-%d"},
      {"pattern with another conversion",
       [](auto& c) { c.set_gpu_device_pattern("/dev/%s%d"); },
       absl::StatusCode::kInvalidArgument, "process.gpu_device_pattern",
       "/dev/%s%d"},
      {"relative pattern",
       [](auto& c) { c.set_gpu_device_pattern("nvidia%d"); },
       absl::StatusCode::kInvalidArgument, "process.gpu_device_pattern",
       "nvidia%d"},
      {"relative shared device",
       [](auto& c) { c.add_shared_devices("nvidiactl"); },
       absl::StatusCode::kInvalidArgument, "process.shared_devices",
       "nvidiactl"},
      {"missing bwrap path",
       [](auto& c) { c.set_bwrap_path("/nonexistent/bwrap"); },
       absl::StatusCode::kFailedPrecondition, "process.bwrap_path",
       "/nonexistent/bwrap"},
      {"bwrap not in PATH",
       [](auto& c) { c.set_bwrap_path("computevoucher-no-such-bwrap"); },
       absl::StatusCode::kFailedPrecondition, "process.bwrap_path",
       "computevoucher-no-such-bwrap not found in PATH"},
  };
  for (const Case& c : cases) {
    pb::ProcessRuntimeConfig config = NobodyConfig();
    c.change(config);
    EXPECT_THAT(ResolveProcessSettings(config, "/var/lib/work"),
                StatusIs(c.code, AllOf(HasSubstr(c.field), HasSubstr(c.value))))
        << c.name << ": " << config.ShortDebugString();
  }
}

TEST(ResolveProcessSettings, AppliesDefaultsAndResolvesUser) {
  struct passwd* nobody = getpwnam("nobody");
  ASSERT_NE(nobody, nullptr);
  for (const std::string& user :
       {std::string("nobody"), absl::StrCat(nobody->pw_uid)}) {
    pb::ProcessRuntimeConfig config;
    config.set_run_as_user(user);
    ASSERT_OK_AND_ASSIGN(ProcessSettings runtime,
                         ResolveProcessSettings(config, "/srv/work"));
    EXPECT_TRUE(runtime.sandboxed) << user;
    EXPECT_EQ(runtime.uid, nobody->pw_uid) << user;
    EXPECT_EQ(runtime.gid, nobody->pw_gid) << user;
    EXPECT_EQ(runtime.bwrap_path, "bwrap") << user;
    EXPECT_EQ(runtime.work_root, "/srv/work") << user;
    EXPECT_EQ(runtime.gpu_device_pattern, "/dev/nvidia%d") << user;
    EXPECT_THAT(runtime.shared_devices,
                ElementsAre("/dev/nvidiactl", "/dev/nvidia-uvm",
                            "/dev/nvidia-uvm-tools"))
        << user;
  }
}

TEST(ResolveProcessSettings, NoneRunsUnsandboxed) {
  pb::ProcessRuntimeConfig config;
  config.set_sandbox("none");
  ASSERT_OK_AND_ASSIGN(ProcessSettings runtime,
                       ResolveProcessSettings(config, "/srv/work"));
  EXPECT_FALSE(runtime.sandboxed);
  ASSERT_OK_AND_ASSIGN(std::optional<SandboxSpec> spec,
                       PrepareSandbox(runtime, "AL-1", {0, 1}));
  EXPECT_FALSE(spec.has_value());
}

// PrepareSandbox against a temporary directory standing for /dev and the
// work root. As root the user is nobody and the devices are made with
// mknod; otherwise the user is the test's own and the devices are
// symlinks to /dev/null.
class PrepareSandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(MakeTempDir("sandbox", temp_));
    dir_ = temp_.path();
    ASSERT_EQ(mkdir((dir_ + "/dev").c_str(), 0755), 0);
    for (const char* name : {"gpu0", "gpu1", "gpu2", "ctl"}) {
      MakeDevice(dir_ + "/dev/" + name);
    }
    std::ofstream(dir_ + "/dev/gpu3") << "not a device";
    std::ofstream(dir_ + "/dev/plain") << "not a device";

    if (geteuid() == 0) {
      struct passwd* nobody = getpwnam("nobody");
      ASSERT_NE(nobody, nullptr);
      runtime_.uid = nobody->pw_uid;
      runtime_.gid = nobody->pw_gid;
    } else {
      runtime_.uid = geteuid();
      runtime_.gid = getegid();
    }
    runtime_.bwrap_path = "bwrap";
    runtime_.work_root = dir_ + "/state/work";
    runtime_.gpu_device_pattern = dir_ + "/dev/gpu%d";
    runtime_.shared_devices = {dir_ + "/dev/ctl", dir_ + "/dev/missing"};
  }
  void MakeDevice(const std::string& path) {
    if (geteuid() == 0) {
      ASSERT_EQ(mknod(path.c_str(), S_IFCHR | 0666, makedev(1, 3)), 0)
          << path << ": " << std::strerror(errno);
    } else {
      ASSERT_EQ(symlink("/dev/null", path.c_str()), 0)
          << path << ": " << std::strerror(errno);
    }
  }

  TempDir temp_;  // destroyed after the members declared below
  std::string dir_;
  ProcessSettings runtime_;
};

TEST_F(PrepareSandboxTest, ExpandsGpuDevicesAndKeepsSharedOnesThatExist) {
  ASSERT_OK_AND_ASSIGN(std::optional<SandboxSpec> spec,
                       PrepareSandbox(runtime_, "AL-00000007", {2, 0}));
  ASSERT_TRUE(spec.has_value());
  EXPECT_EQ(spec->bwrap_path, "bwrap");
  EXPECT_EQ(spec->uid, runtime_.uid);
  EXPECT_EQ(spec->gid, runtime_.gid);
  EXPECT_THAT(
      spec->device_files,
      ElementsAre(dir_ + "/dev/gpu2", dir_ + "/dev/gpu0", dir_ + "/dev/ctl"));
  EXPECT_EQ(spec->work_dir, dir_ + "/state/work/AL-00000007");
}

TEST_F(PrepareSandboxTest, CreatesWorkDirOwnedByUserMode0700) {
  ASSERT_OK_AND_ASSIGN(std::optional<SandboxSpec> spec,
                       PrepareSandbox(runtime_, "AL-1", {}));
  ASSERT_TRUE(spec.has_value());
  EXPECT_THAT(spec->device_files, ElementsAre(dir_ + "/dev/ctl"));
  struct stat st;
  ASSERT_EQ(stat(spec->work_dir.c_str(), &st), 0) << std::strerror(errno);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(st.st_uid, runtime_.uid);
  EXPECT_EQ(st.st_gid, runtime_.gid);
  ASSERT_EQ(stat(runtime_.work_root.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0711u);
}

TEST_F(PrepareSandboxTest, KeepsAnExistingWorkDirAndItsContents) {
  const std::string work_dir = runtime_.work_root + "/AL-1";
  std::filesystem::create_directories(work_dir);
  ASSERT_EQ(chmod(work_dir.c_str(), 0755), 0);
  std::ofstream(work_dir + "/checkpoint") << "step 1000";
  ASSERT_OK_AND_ASSIGN(std::optional<SandboxSpec> spec,
                       PrepareSandbox(runtime_, "AL-1", {1}));
  ASSERT_TRUE(spec.has_value());
  EXPECT_EQ(ReadFileOrEmpty(work_dir + "/checkpoint"), "step 1000");
  struct stat st;
  ASSERT_EQ(stat(work_dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(st.st_uid, runtime_.uid);
}

TEST_F(PrepareSandboxTest, RefusesASymlinkAsWorkDir) {
  const std::string elsewhere = dir_ + "/elsewhere";
  ASSERT_EQ(mkdir(elsewhere.c_str(), 0750), 0);
  std::filesystem::create_directories(runtime_.work_root);
  ASSERT_EQ(symlink(elsewhere.c_str(), (runtime_.work_root + "/AL-1").c_str()),
            0);
  EXPECT_THAT(PrepareSandbox(runtime_, "AL-1", {}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr(runtime_.work_root + "/AL-1")));
  struct stat st;
  ASSERT_EQ(stat(elsewhere.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_EQ(st.st_uid, geteuid());
}

TEST_F(PrepareSandboxTest, RefusesMissingOrFakeDevices) {
  struct Case {
    std::vector<int> gpus;
    std::vector<std::string> shared;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{0, 4}, {}, "GPU 4: " + dir_ + "/dev/gpu4: No such file or directory"},
      {{3}, {}, "GPU 3: " + dir_ + "/dev/gpu3: not a character device"},
      {{0},
       {dir_ + "/dev/plain"},
       "process.shared_devices: " + dir_ +
           "/dev/plain: not a character "
           "device"},
  };
  for (const Case& c : cases) {
    ProcessSettings runtime = runtime_;
    runtime.shared_devices = c.shared;
    EXPECT_THAT(
        PrepareSandbox(runtime, "AL-1", c.gpus),
        StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr(c.message)))
        << c.message;
  }
}

TEST_F(PrepareSandboxTest, RefusesAllocationIdsThatAreNotFileNames) {
  for (const char* id : {"", ".", "..", "a/b", "../AL-1", "/AL-1"}) {
    EXPECT_THAT(PrepareSandbox(runtime_, id, {0}),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr(absl::StrCat("allocation_id: must be a "
                                                "file name, got \"",
                                                id, "\""))))
        << id;
  }
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/state/AL-1"));
}

}  // namespace
}  // namespace computevoucher::agent
