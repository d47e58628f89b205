// voucherctl's config file and its profiles: named sets of settings
// (scheduler, token, TLS) for people who work with several schedulers. The
// file's top-level settings are the profile "default"; `voucherctl login
// --profile NAME` adds another, `voucherctl profile use NAME` makes it the
// one used, and --profile or VOUCHERCTL_PROFILE picks one for a command.
#ifndef COMPUTEVOUCHER_CLIENT_INTERNAL_PROFILES_H_
#define COMPUTEVOUCHER_CLIENT_INTERNAL_PROFILES_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/internal/cli.h"
#include "computevoucher/v1/config.pb.h"

namespace computevoucher::client {

inline constexpr char kDefaultProfile[] = "default";

// The value of environment variable `name`; "" when it is not set.
std::string Env(const char* name);

// $XDG_CONFIG_HOME/voucherctl/config, or ~/.config/voucherctl/config.
std::string ConfigPath();

// The config file; empty when there is none. InvalidArgument naming the
// file when it cannot be parsed or names a profile twice.
absl::StatusOr<computevoucher::v1::ClientConfig> ReadConfig();

// Writes `config` to ConfigPath() (mode 0600, its folder created 0700),
// replacing what was there.
absl::Status WriteConfig(const computevoucher::v1::ClientConfig& config);

// The profile a command uses: --profile, else VOUCHERCTL_PROFILE, else
// the file's current profile, else "default". InvalidArgument naming
// where the name came from when it is not a profile name.
struct ProfileChoice {
  std::string name;
  // "--profile", "VOUCHERCTL_PROFILE", the file, or "" for the default.
  std::string source;
  // Named for this command (--profile or VOUCHERCTL_PROFILE): then
  // VOUCHERCTL_ENDPOINT and VOUCHERCTL_TOKEN do not apply, so that one
  // scheduler's token never goes to another.
  bool named = false;
};
absl::StatusOr<ProfileChoice> ChooseProfile(
    const Args& args, const computevoucher::v1::ClientConfig& file);

// The settings of profile `name` (endpoint, token and TLS, in a
// ClientConfig without profiles); nullopt when `file` has no such profile
// ("default" is always there).
std::optional<computevoucher::v1::ClientConfig> FindProfile(
    const computevoucher::v1::ClientConfig& file, const std::string& name);

// Sets profile `name` of `file` to the endpoint, token and TLS settings of
// `settings`, adding the profile when it is new.
void SetProfile(computevoucher::v1::ClientConfig& file, const std::string& name,
                const computevoucher::v1::ClientConfig& settings);

// Every profile's name: "default" first, then the others as saved.
std::vector<std::string> ProfileNames(
    const computevoucher::v1::ClientConfig& file);

// The message for a command naming profile `choice` that `file` lacks:
// what there is, and how to create it.
std::string NoSuchProfile(const ProfileChoice& choice,
                          const computevoucher::v1::ClientConfig& file);

}  // namespace computevoucher::client

#endif  // COMPUTEVOUCHER_CLIENT_INTERNAL_PROFILES_H_
