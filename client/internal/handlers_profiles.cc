// Handlers of the commands that set voucherctl up: login and profiles.
#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "client/internal/commands.h"
#include "client/internal/exit_codes.h"
#include "client/internal/profiles.h"
#include "common/enum_word.h"
#include "common/status_macros.h"
#include "common/validate.h"

namespace computevoucher::client {
namespace {

namespace pb = ::computevoucher::v1;

// Who `token` is: "enterprise E-000001", "agent of cluster hz-a", "admin".
std::string Holder(const pb::Token& token) {
  std::string holder = EnumWord(token.role());
  if (!token.enterprise_id().empty()) {
    absl::StrAppend(&holder, " ", token.enterprise_id());
  }
  if (!token.cluster_id().empty()) {
    absl::StrAppend(&holder, " of cluster ", token.cluster_id());
  }
  return holder;
}

// The profile named by the positional argument, which must exist.
absl::StatusOr<std::string> ExistingProfile(const Context& c,
                                            const pb::ClientConfig& file) {
  const std::string name = c.args.positionals()[0];
  if (FindProfile(file, name).has_value()) return name;
  return absl::InvalidArgumentError(
      NoSuchProfile(ProfileChoice{name, "NAME"}, file));
}

}  // namespace

absl::Status Login(Context& c) {
  ASSIGN_OR_RETURN(Settings settings, ResolveSettings(c.args));
  pb::ClientConfig& config = settings.config;
  if (config.token().empty()) {
    std::string line;
    std::getline(c.in, line);
    config.set_token(std::string(absl::StripAsciiWhitespace(line)));
  }
  if (config.token().empty()) {
    return absl::InvalidArgumentError(
        "login: no token: pass --token TOKEN, set VOUCHERCTL_TOKEN, or give "
        "it on standard input");
  }
  if (config.tls().ByteSizeLong() == 0) config.clear_tls();
  const std::string profile = settings.profile.name;
  // Login creates the profile it names.
  settings.profile_status = absl::OkStatus();
  if (!c.args.Switch("no-check")) {
    pb::Token token;
    Connection check(settings, c.err);
    if (absl::Status s = check.Call(&pb::EnterpriseService::Stub::WhoAmI,
                                    pb::WhoAmIRequest(), &token);
        !s.ok()) {
      return WithExitCode(
          absl::Status(s.code(),
                       absl::StrCat("login: nothing saved: ", s.message(),
                                    " (--no-check saves without asking the "
                                    "scheduler)")),
          ExitCodeOf(s));
    }
    c.printer.out() << "The scheduler at " << config.endpoint()
                    << " accepts token " << token.token_id() << " ("
                    << Holder(token) << ").\n";
  }
  ASSIGN_OR_RETURN(pb::ClientConfig file, ReadConfig());
  SetProfile(file, profile, config);
  RETURN_IF_ERROR(WriteConfig(file));
  c.printer.out() << "Saved endpoint " << config.endpoint()
                  << " and token as profile " << profile << " in "
                  << ConfigPath() << " (mode 0600).\n";
  return absl::OkStatus();
}

absl::Status ProfileList(Context& c) {
  ASSIGN_OR_RETURN(const pb::ClientConfig file, ReadConfig());
  const std::string current =
      file.current_profile().empty() ? kDefaultProfile : file.current_profile();
  // -o json and yaml: the profiles without their tokens.
  pb::ClientConfig shown;
  View view;
  view.message = &shown;
  view.columns = {{"CURRENT", "current"},
                  {"NAME", "name"},
                  {"ENDPOINT", "endpoint"},
                  {"TOKEN", "token"},
                  {"TLS", "tls"}};
  for (const std::string& name : ProfileNames(file)) {
    const pb::ClientConfig settings = *FindProfile(file, name);
    pb::ClientProfile* p = shown.add_profiles();
    p->set_name(name);
    p->set_endpoint(settings.endpoint());
    if (settings.has_tls()) *p->mutable_tls() = settings.tls();
    view.rows.push_back(
        {name == current ? "*" : "", name,
         settings.endpoint().empty() ? std::string("-") : settings.endpoint(),
         settings.token().empty() ? "-" : "saved",
         settings.has_tls() ? "yes" : "no"});
  }
  shown.set_current_profile(current);
  c.printer.Print(view);
  return absl::OkStatus();
}

absl::Status ProfileUse(Context& c) {
  ASSIGN_OR_RETURN(pb::ClientConfig file, ReadConfig());
  ASSIGN_OR_RETURN(const std::string name, ExistingProfile(c, file));
  if (name == kDefaultProfile) {
    file.clear_current_profile();
  } else {
    file.set_current_profile(name);
  }
  RETURN_IF_ERROR(WriteConfig(file));
  c.printer.out() << "Commands use profile " << name
                  << " unless --profile or VOUCHERCTL_PROFILE names another.\n";
  return absl::OkStatus();
}

absl::Status ProfileDelete(Context& c) {
  ASSIGN_OR_RETURN(pb::ClientConfig file, ReadConfig());
  ASSIGN_OR_RETURN(const std::string name, ExistingProfile(c, file));
  if (name == kDefaultProfile) {
    return absl::InvalidArgumentError(
        "NAME: the default profile cannot be deleted; 'voucherctl login' "
        "replaces its settings");
  }
  auto* profiles = file.mutable_profiles();
  profiles->erase(std::remove_if(profiles->begin(), profiles->end(),
                                 [&](const pb::ClientProfile& p) {
                                   return p.name() == name;
                                 }),
                  profiles->end());
  if (file.current_profile() == name) file.clear_current_profile();
  RETURN_IF_ERROR(WriteConfig(file));
  c.printer.out() << "Deleted profile " << name << " and its token.\n";
  return absl::OkStatus();
}

}  // namespace computevoucher::client
