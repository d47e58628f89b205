#include "client/internal/profiles.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/config.h"
#include "common/status_macros.h"
#include "common/validate.h"
#include "google/protobuf/text_format.h"

namespace computevoucher::client {
namespace {

namespace pb = ::computevoucher::v1;

std::string ConfigDir() {
  const std::string xdg = Env("XDG_CONFIG_HOME");
  return absl::StrCat(xdg.empty() ? Env("HOME") + "/.config" : xdg,
                      "/voucherctl");
}

// InvalidArgument naming `source` unless `name` is 1..64 letters, digits,
// '.', '_' or '-'.
absl::Status CheckProfileName(absl::string_view source,
                              absl::string_view name) {
  bool ok = !name.empty() && name.size() <= 64;
  for (const char c : name) {
    ok = ok && (absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-');
  }
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(source, ": ", Quoted(name),
                   " is not a profile name (1..64 letters, digits, '.', '_' "
                   "or '-')"));
}

}  // namespace

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

std::string ConfigPath() { return ConfigDir() + "/config"; }

absl::StatusOr<pb::ClientConfig> ReadConfig() {
  pb::ClientConfig file;
  const std::string path = ConfigPath();
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return file;
  RETURN_IF_ERROR(LoadTextProto(path, &file));
  absl::flat_hash_set<std::string> names;
  for (const pb::ClientProfile& p : file.profiles()) {
    RETURN_IF_ERROR(
        CheckProfileName(absl::StrCat(path, ": profiles.name"), p.name()));
    if (p.name() == kDefaultProfile) {
      return absl::InvalidArgumentError(absl::StrCat(
          path,
          ": profiles.name: \"default\" is reserved for the top-level "
          "settings"));
    }
    if (!names.insert(p.name()).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": profile ", Quoted(p.name()), " is there twice"));
    }
  }
  return file;
}

absl::Status WriteConfig(const pb::ClientConfig& config) {
  const std::string dir = ConfigDir();
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (!error) {
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all, error);
  }
  if (error) {
    return absl::PermissionDeniedError(
        absl::StrCat(dir, ": cannot create: ", error.message()));
  }
  std::string text;
  google::protobuf::TextFormat::PrintToString(config, &text);
  const std::string path = ConfigPath();
  // WritePrivateFile never replaces a file, so a second login writes a new
  // file and renames it over the old one.
  const std::string temporary = path + ".new";
  std::remove(temporary.c_str());
  RETURN_IF_ERROR(WritePrivateFile(temporary, text));
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    return absl::PermissionDeniedError(
        absl::StrCat(path, ": cannot replace: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<ProfileChoice> ChooseProfile(const Args& args,
                                            const pb::ClientConfig& file) {
  ProfileChoice choice;
  if (args.Has("profile")) {
    choice = {args.Value("profile"), "--profile", true};
  } else if (!Env("VOUCHERCTL_PROFILE").empty()) {
    choice = {Env("VOUCHERCTL_PROFILE"), "VOUCHERCTL_PROFILE", true};
  } else if (!file.current_profile().empty()) {
    choice = {file.current_profile(),
              absl::StrCat(ConfigPath(), ": current_profile")};
  } else {
    return ProfileChoice{kDefaultProfile, ""};
  }
  RETURN_IF_ERROR(CheckProfileName(choice.source, choice.name));
  return choice;
}

std::optional<pb::ClientConfig> FindProfile(const pb::ClientConfig& file,
                                            const std::string& name) {
  pb::ClientConfig settings;
  if (name == kDefaultProfile) {
    settings = file;
    settings.clear_profiles();
    settings.clear_current_profile();
    return settings;
  }
  for (const pb::ClientProfile& p : file.profiles()) {
    if (p.name() != name) continue;
    settings.set_endpoint(p.endpoint());
    settings.set_token(p.token());
    if (p.has_tls()) *settings.mutable_tls() = p.tls();
    return settings;
  }
  return std::nullopt;
}

void SetProfile(pb::ClientConfig& file, const std::string& name,
                const pb::ClientConfig& settings) {
  if (name == kDefaultProfile) {
    file.set_endpoint(settings.endpoint());
    file.set_token(settings.token());
    file.clear_tls();
    if (settings.has_tls()) *file.mutable_tls() = settings.tls();
    return;
  }
  pb::ClientProfile* profile = nullptr;
  for (pb::ClientProfile& p : *file.mutable_profiles()) {
    if (p.name() == name) profile = &p;
  }
  if (profile == nullptr) profile = file.add_profiles();
  profile->Clear();
  profile->set_name(name);
  profile->set_endpoint(settings.endpoint());
  profile->set_token(settings.token());
  if (settings.has_tls()) *profile->mutable_tls() = settings.tls();
}

std::vector<std::string> ProfileNames(const pb::ClientConfig& file) {
  std::vector<std::string> names = {kDefaultProfile};
  for (const pb::ClientProfile& p : file.profiles()) names.push_back(p.name());
  return names;
}

std::string NoSuchProfile(const ProfileChoice& choice,
                          const pb::ClientConfig& file) {
  return absl::StrCat(choice.source, ": no profile ", Quoted(choice.name),
                      " in ", ConfigPath(),
                      " (profiles: ", absl::StrJoin(ProfileNames(file), ", "),
                      "); create it with 'voucherctl login --profile ",
                      choice.name, " --endpoint HOST:PORT --token TOKEN'");
}

}  // namespace computevoucher::client
