#include "client/internal/commands.h"

#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/internal/completion.h"
#include "client/internal/values.h"
#include "common/config.h"
#include "common/status_macros.h"
#include "common/time_util.h"

namespace computevoucher::client {
namespace {

std::vector<FlagSpec> Join(std::vector<FlagSpec> a,
                           const std::vector<FlagSpec>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// What quote and allocate ask for.
const std::vector<FlagSpec>& ResourceFlags() {
  static const auto* const kFlags = new std::vector<FlagSpec>{
      {"model", "MODEL",
       "GPU model, e.g. H100, in any letter case (or --class); see "
       "'voucherctl offers'"},
      {"class", "CLASS", "any GPU of a hardware class: domestic or other"},
      {"gpus", "N", "number of GPUs, 1..1024", true},
      {"hours", "HOURS", "longest it may run, e.g. 2 or 1.5", true},
      {"voucher", "VOUCHER_ID",
       "voucher to pay with (default: chosen "
       "automatically)"},
  };
  return *kFlags;
}

// Whose objects an admin or auditor reads.
const FlagSpec& EnterpriseFlag() {
  static const auto* const kFlag =
      new FlagSpec{"enterprise", "ENTERPRISE_ID",
                   "whose: required with admin and auditor tokens (an "
                   "enterprise token reads its own)"};
  return *kFlag;
}

const std::vector<FlagSpec>& PeriodFlags() {
  static const auto* const kFlags = new std::vector<FlagSpec>{
      {"from", "DATE", "first day of the period, YYYY-MM-DD", true},
      {"to", "DATE", "last day of the period (included), YYYY-MM-DD", true},
  };
  return *kFlags;
}

const std::vector<FlagSpec>& ValidityFlags() {
  static const auto* const kFlags = new std::vector<FlagSpec>{
      {"valid-from", "DATE",
       "first day of validity (default: now or the program's start)"},
      {"valid-until", "DATE",
       "last day of validity, included (default: the program's end)"},
      {"priority", "N", "spent first when higher, 0..1000 (default 0)"},
  };
  return *kFlags;
}

}  // namespace

const std::vector<FlagSpec>& GlobalFlags() {
  static const auto* const kFlags = new std::vector<FlagSpec>{
      {"endpoint", "HOST:PORT[,...]",
       "scheduler address, or replicas comma separated (env "
       "VOUCHERCTL_ENDPOINT; default 127.0.0.1:7443)"},
      {"profile", "NAME",
       "saved settings to use (env VOUCHERCTL_PROFILE; default: the one "
       "'voucherctl profile use' chose, else default)"},
      {"leader-wait", "DURATION",
       "how long to retry while no replica leads, e.g. 30s; 0s fails at "
       "once (default 10s)"},
      {"token", "TOKEN", "bearer token (env VOUCHERCTL_TOKEN)"},
      {"tls-ca", "FILE", "CA bundle that signs the scheduler's certificate"},
      {"tls-cert", "FILE", "client certificate, for mutual TLS"},
      {"tls-key", "FILE", "key of the client certificate"},
      {"output", "FORMAT",
       "table, wide (a table with every field), json, yaml or csv (default "
       "table)",
       false, 'o'},
      {"no-headers", nullptr, "tables and CSV without their header line"},
      {"encoding", "ENCODING",
       "of CSV: utf-8, utf-8-bom (for Excel) or gb18030 (default utf-8)"},
      {"utc", nullptr, "show times in UTC instead of Asia/Shanghai"},
      {"request-id", "ID",
       "idempotency key of a mutation (default random); reuse it to retry"},
      {"help", nullptr, "show help for a command", false, 'h'},
      {"version", nullptr,
       "show voucherctl's version (as 'voucherctl version')"},
  };
  return *kFlags;
}

// Every command voucherctl knows, with its flags and help: a data table.
const std::vector<CommandSpec>& Commands() {
  static const auto* const kCommands = new std::vector<CommandSpec>{
      {"",
       "voucherctl: the command-line tool of the compute-voucher scheduler, "
       "for\nenterprises (vouchers, quotes, GPU allocations, statements) and "
       "the program\noffice (programs, enterprises, vouchers, clusters, "
       "settlement, audit).\n\nSettings come from flags, then "
       "VOUCHERCTL_ENDPOINT and VOUCHERCTL_TOKEN,\nthen the file 'voucherctl "
       "login' writes ($XDG_CONFIG_HOME/voucherctl/config).\nThe endpoint may "
       "list scheduler replicas (host1:7443,host2:7443); calls go\nto the one "
       "that leads.\nExit codes: 0 "
       "success, 1 the server refused, 2 usage error, 3 the server\ncould not "
       "be reached."},
      // Enterprise.
      {"apply",
       "Apply to a program for a voucher",
       "",
       nullptr,
       {{"program", "PROGRAM_ID", "program to apply to", true},
        {"amount", "AMOUNT", "amount asked for, e.g. 500000 or 50万", true},
        {"purpose", "TEXT", "what the compute is for", true}},
       "voucherctl apply --program P-000001 --amount 2M --purpose \"training "
       "a grasping policy\"",
       Apply},
      {"applications", "See your applications and their decisions"},
      {"applications list",
       "List your applications",
       "",
       nullptr,
       {EnterpriseFlag()},
       "voucherctl applications list",
       ApplicationsList},
      {"vouchers", "See your vouchers"},
      {"vouchers list",
       "List your vouchers",
       "",
       nullptr,
       {{"state", "STATE",
         "only in STATE: active, suspended, revoked, expired, exhausted"},
        EnterpriseFlag()},
       "voucherctl vouchers list --state active",
       VouchersList},
      {"vouchers show",
       "Show one voucher",
       "VOUCHER_ID",
       nullptr,
       {},
       "voucherctl vouchers show CV-2025-000001",
       VouchersShow},
      {"balance",
       "Show what your vouchers have left, hold and were charged",
       "",
       nullptr,
       {EnterpriseFlag()},
       "voucherctl balance",
       Balance},
      {"offers",
       "See the GPU models on offer to you: prices, free GPUs",
       "",
       nullptr,
       {{"model", "MODEL", "only this GPU model, in any letter case"},
        {"class", "CLASS", "only this hardware class: domestic or other"},
        EnterpriseFlag()},
       "voucherctl offers\nvoucherctl offers --class domestic",
       Offers},
      {"quote", "Price GPUs without holding anything", "", nullptr,
       ResourceFlags(), "voucherctl quote --model H100 --gpus 2 --hours 4",
       Quote},
      {"allocate", "Redeem a voucher for GPUs", "", "COMMAND...",
       Join(ResourceFlags(),
            {{"queue", nullptr,
              "wait in the queue when no GPUs are free (default: fail)"}}),
       "voucherctl allocate --model H100 --gpus 2 --hours 4\n"
       "voucherctl allocate --class domestic --gpus 8 --hours 12 --queue -- "
       "python train.py",
       Allocate},
      {"allocations", "See and manage your allocations"},
      {"allocations list",
       "List your allocations",
       "",
       nullptr,
       {{"state", "STATE", "only in STATE: pending, assigned, running, ended"},
        {"voucher", "VOUCHER_ID", "only those paid by this voucher"},
        EnterpriseFlag()},
       "voucherctl allocations list --state running",
       AllocationsList},
      {"allocations show",
       "Show one allocation and how to reach its GPUs",
       "ALLOCATION_ID",
       nullptr,
       {},
       "voucherctl allocations show AL-000001",
       AllocationsShow},
      {"allocations release",
       "End an allocation (or cancel a queued one)",
       "ALLOCATION_ID",
       nullptr,
       {},
       "voucherctl allocations release AL-000001",
       AllocationsRelease},
      {"allocations extend",
       "Add time to an allocation",
       "ALLOCATION_ID",
       nullptr,
       {{"hours", "HOURS", "hours to add, e.g. 2", true}},
       "voucherctl allocations extend AL-000001 --hours 2",
       AllocationsExtend},
      {"allocations watch",
       "Print an allocation's state changes until it ends",
       "ALLOCATION_ID",
       nullptr,
       {{"interval", "DURATION", "time between polls (default 2s)"}},
       "voucherctl allocations watch AL-000001 --interval 5s",
       AllocationsWatch},
      {"usage",
       "List metered usage and what it was charged",
       "",
       nullptr,
       {{"allocation", "ALLOCATION_ID", "only this allocation's usage"},
        {"from", "DATE", "only usage ending on or after this day"},
        {"to", "DATE", "only usage ending on or before this day"},
        EnterpriseFlag()},
       "voucherctl usage --from 2025-03-01 --to 2025-03-31",
       Usage},
      {"statement", "Cost, subsidy and self-pay per allocation for a period",
       "", nullptr, Join(PeriodFlags(), {EnterpriseFlag()}),
       "voucherctl statement --from 2025-03-01 --to 2025-03-31 -o csv > "
       "march.csv",
       Statement},

      // Admin.
      {"admin", "Run programs: enterprises, providers, vouchers, settlement"},
      {"admin program", "Create and inspect voucher programs"},
      {"admin program create",
       "Create a program and fund its budget",
       "",
       nullptr,
       {{"name", "NAME", "program name", true},
        {"issuer", "ISSUER", "issuing office", true},
        {"budget", "AMOUNT", "budget, e.g. 250M", true},
        {"valid-from", "DATE", "first day of validity", true},
        {"valid-until", "DATE", "last day of validity (included)", true},
        {"domestic-ratio", "PERCENT", "subsidy for domestic hardware, e.g. 30%",
         true},
        {"other-ratio", "PERCENT", "subsidy for other hardware, e.g. 20%",
         true},
        {"sme-ratio", "PERCENT", "subsidy for SMEs when higher (default 0)"},
        {"cap", "AMOUNT", "face value per enterprise per year (default: none)"},
        {"categories", "LIST",
         "eligible enterprise categories, comma separated (default: all)"}},
       "voucherctl admin program create --name \"Hangzhou humanoid robots "
       "2025\" \\\n    --issuer \"Hangzhou EITB\" --budget 250M --valid-from "
       "2025-01-22 --valid-until 2027-12-31 \\\n    --domestic-ratio 30% "
       "--other-ratio 20% --sme-ratio 50% --cap 8M",
       ProgramCreate},
      {"admin program list",
       "List programs",
       "",
       nullptr,
       {},
       "voucherctl admin program list",
       ProgramList},
      {"admin program show",
       "Show a program and its balances",
       "PROGRAM_ID",
       nullptr,
       {},
       "voucherctl admin program show P-000001",
       ProgramShow},
      {"admin enterprise", "Register and inspect enterprises"},
      {"admin enterprise add",
       "Register an enterprise",
       "",
       nullptr,
       {{"name", "NAME", "legal name", true},
        {"credit-code", "CODE", "unified social credit code (18 characters)",
         true},
        {"category", "CATEGORY", "category, e.g. 整机 or 科研平台", true},
        {"district", "DISTRICT", "district, e.g. 余杭区"},
        {"sme", nullptr, "a small or medium enterprise"},
        {"related", "LIST",
         "related providers, comma separated, e.g. PR-000002"}},
       "voucherctl admin enterprise add --name 杭州具身智能机器人有限公司 "
       "\\\n    --credit-code 914403001922038216 --category 整机 --district "
       "余杭区",
       EnterpriseAdd},
      {"admin enterprise import",
       "Register the enterprises of a CSV file",
       "FILE",
       nullptr,
       {},
       "voucherctl admin enterprise import enterprises.csv\n"
       "# columns: name,credit_code,category[,district,sme,related]",
       EnterpriseImport},
      {"admin enterprise list",
       "List enterprises",
       "",
       nullptr,
       {},
       "voucherctl admin enterprise list",
       EnterpriseList},
      {"admin enterprise show",
       "Show one enterprise, by id or by credit code",
       "ENTERPRISE_ID|CREDIT_CODE",
       nullptr,
       {},
       "voucherctl admin enterprise show E-000001\n"
       "voucherctl admin enterprise show 914403001922038216",
       EnterpriseShow},
      {"admin enterprise related",
       "Set the providers related to an enterprise, whose GPUs it may not "
       "redeem vouchers on",
       "ENTERPRISE_ID",
       nullptr,
       {{"providers", "LIST",
         "the whole new set, comma separated; \"none\" to clear it", true}},
       "voucherctl admin enterprise related E-000002 --providers PR-000002",
       EnterpriseRelated},
      {"admin provider", "Register and inspect compute providers"},
      {"admin provider add",
       "Register a provider",
       "",
       nullptr,
       {{"name", "NAME", "legal name", true},
        {"credit-code", "CODE", "unified social credit code (18 characters)",
         true}},
       "voucherctl admin provider add --name 杭州算力科技有限公司 "
       "--credit-code 91330100716105852F",
       ProviderAdd},
      {"admin provider list",
       "List providers with payable and paid amounts",
       "",
       nullptr,
       {},
       "voucherctl admin provider list",
       ProviderList},
      {"admin provider show",
       "Show one provider with its payable and paid amounts",
       "PROVIDER_ID",
       nullptr,
       {},
       "voucherctl admin provider show PR-000001",
       ProviderShow},
      {"admin provider pay",
       "Record a payment to a provider: its payable goes down, its paid up",
       "PROVIDER_ID",
       nullptr,
       {{"amount", "AMOUNT", "amount paid, at most the provider's payable",
         true},
        {"reference", "REF", "payment reference, e.g. the bank transfer id",
         true}},
       "voucherctl admin provider pay PR-000001 --amount 12345.67 "
       "--reference \"ICBC 2026-12-05 0042\"",
       ProviderPay},
      {"admin cluster", "Approve and inspect provider clusters"},
      {"admin cluster list",
       "List clusters",
       "",
       nullptr,
       {{"state", "STATE",
         "only in STATE: pending-approval, approved, "
         "disabled"}},
       "voucherctl admin cluster list --state pending-approval",
       ClusterList},
      {"admin cluster approve",
       "Let a cluster serve allocations, or take the terms its agent "
       "proposed (the REVIEW column of admin cluster list)",
       "CLUSTER_ID",
       nullptr,
       {},
       "voucherctl admin cluster approve hz-a",
       ClusterApprove},
      {"admin cluster disable",
       "Stop placing allocations on a cluster",
       "CLUSTER_ID",
       nullptr,
       {},
       "voucherctl admin cluster disable hz-a",
       ClusterDisable},
      {"admin application", "Review enterprises' applications"},
      {"admin application list",
       "List applications",
       "",
       nullptr,
       {{"state", "STATE", "only in STATE: pending, approved, rejected"},
        {"program", "PROGRAM_ID", "only this program's"}},
       "voucherctl admin application list --state pending",
       ApplicationList},
      {"admin application show",
       "Show one application",
       "APPLICATION_ID",
       nullptr,
       {},
       "voucherctl admin application show AP-000001",
       ApplicationShow},
      {"admin application approve",
       "Approve an application and issue its voucher", "APPLICATION_ID",
       nullptr,
       Join({{"amount", "AMOUNT", "face value (default: the amount asked)"},
             {"reason", "TEXT", "note recorded with the decision"}},
            ValidityFlags()),
       "voucherctl admin application approve AP-000001 --amount 1M",
       ApplicationApprove},
      {"admin application reject",
       "Reject an application",
       "APPLICATION_ID",
       nullptr,
       {{"reason", "TEXT", "why, shown to the enterprise", true}},
       "voucherctl admin application reject AP-000001 --reason \"not "
       "eligible\"",
       ApplicationReject},
      {"admin voucher", "Issue and manage vouchers"},
      {"admin voucher issue", "Issue a voucher to an enterprise", "", nullptr,
       Join({{"program", "PROGRAM_ID", "program funding it", true},
             {"enterprise", "ENTERPRISE_ID", "enterprise receiving it", true},
             {"amount", "AMOUNT", "face value, e.g. 1M or 50万", true}},
            ValidityFlags()),
       "voucherctl admin voucher issue --program P-000001 --enterprise "
       "E-000001 --amount 1M",
       VoucherIssue},
      {"admin voucher issue-batch",
       "Issue the vouchers of a CSV file, all or none",
       "FILE",
       nullptr,
       {},
       "voucherctl admin voucher issue-batch vouchers.csv\n"
       "# columns: program,enterprise,amount[,valid_from,valid_until,"
       "priority]",
       VoucherIssueBatch},
      {"admin voucher suspend",
       "Suspend a voucher; its allocations end",
       "VOUCHER_ID",
       nullptr,
       {{"reason", "TEXT", "why", true}},
       "voucherctl admin voucher suspend CV-2025-000001 --reason audit",
       VoucherSuspend},
      {"admin voucher resume",
       "Resume a suspended voucher",
       "VOUCHER_ID",
       nullptr,
       {},
       "voucherctl admin voucher resume CV-2025-000001",
       VoucherResume},
      {"admin voucher revoke",
       "Revoke a voucher; what is left returns to the budget",
       "VOUCHER_ID",
       nullptr,
       {{"reason", "TEXT", "why", true}},
       "voucherctl admin voucher revoke CV-2025-000001 --reason \"left the "
       "program\"",
       VoucherRevoke},
      {"admin voucher list",
       "List all vouchers",
       "",
       nullptr,
       {{"program", "PROGRAM_ID", "only this program's"},
        {"enterprise", "ENTERPRISE_ID", "only this enterprise's"},
        {"state", "STATE",
         "only in STATE: active, suspended, revoked, expired, exhausted"}},
       "voucherctl admin voucher list --enterprise E-000001",
       VoucherList},
      {"admin voucher show",
       "Show any enterprise's voucher",
       "VOUCHER_ID",
       nullptr,
       {},
       "voucherctl admin voucher show CV-2025-000001",
       VouchersShow},
      {"admin voucher adjust",
       "Change a voucher's face value, drawing on or returning to its "
       "program's budget",
       "VOUCHER_ID",
       nullptr,
       {{"add", "AMOUNT", "face value to add (within budget and cap)"},
        {"remove", "AMOUNT",
         "face value to take back (at most what is "
         "available)"},
        {"reason", "TEXT", "why, recorded in the journal", true}},
       "voucherctl admin voucher adjust CV-2025-000001 --add 500000 --reason "
       "\"second tranche\"",
       VoucherAdjust},
      {"admin allocation", "See every enterprise's allocations"},
      {"admin allocation list",
       "List allocations of all enterprises",
       "",
       nullptr,
       {{"enterprise", "ENTERPRISE_ID", "only this enterprise's"},
        {"cluster", "CLUSTER_ID", "only on this cluster"},
        {"state", "STATE", "only in STATE: pending, assigned, running, ended"}},
       "voucherctl admin allocation list --cluster hz-a --state running",
       AdminAllocationList},
      {"admin allocation show",
       "Show any enterprise's allocation",
       "ALLOCATION_ID",
       nullptr,
       {},
       "voucherctl admin allocation show AL-00000001",
       AllocationsShow},
      {"admin token", "Create and revoke bearer tokens"},
      {"admin token create",
       "Create a token; its secret is shown once",
       "",
       nullptr,
       {{"role", "ROLE", "admin, auditor, enterprise or agent", true},
        {"enterprise", "ENTERPRISE_ID",
         "enterprise bound to (role enterprise)"},
        {"cluster", "CLUSTER_ID", "cluster bound to (role agent)"},
        {"provider", "PROVIDER_ID", "provider owning the cluster (role agent)"},
        {"description", "TEXT", "who holds it"},
        {"expires", "DATE",
         "last day it works (included), YYYY-MM-DD (default: never)"},
        {"secret-file", "FILE",
         "write the secret to FILE (mode 0600) instead of showing it"}},
       "voucherctl admin token create --role enterprise --enterprise "
       "E-000001\n"
       "voucherctl admin token create --role agent --cluster hz-a --provider "
       "PR-000001 --secret-file hz-a.token",
       TokenCreate},
      {"admin token revoke",
       "Revoke a token",
       "TOKEN_ID",
       nullptr,
       {},
       "voucherctl admin token revoke TK-000002",
       TokenRevoke},
      {"admin token list",
       "List tokens (never their secrets)",
       "",
       nullptr,
       {},
       "voucherctl admin token list",
       TokenList},
      {"admin settlement",
       "Subsidy to pay each provider for a period, with the journal position",
       "", nullptr,
       Join(PeriodFlags(), {{"provider", "PROVIDER_ID", "only this provider"}}),
       "voucherctl admin settlement --from 2025-03-01 --to 2025-03-31 -o csv "
       "> settlement.csv",
       Settlement},
      {"admin journal", "Read the journal"},
      {"admin journal list",
       "List journal entries in sequence order",
       "",
       nullptr,
       {{"from-sequence", "N", "first entry to list (default 1)"},
        {"voucher", "VOUCHER_ID", "only entries about this voucher"},
        {"allocation", "ALLOCATION_ID", "only entries about this allocation"},
        {"limit", "N", "most entries to list, 1..1000 (default 100)"}},
       "voucherctl admin journal list --voucher CV-2025-000001 -o csv",
       JournalList},
      {"admin audit", "Verify the journal; read who did what"},
      {"admin audit log",
       "Commands people and agents sent: when, token, holder, address, what",
       "",
       nullptr,
       {{"token-id", "TOKEN_ID", "only commands sent with this token"},
        {"object", "ID", "only commands on this object (voucher, ...)"},
        {"from", "DATE", "first day, YYYY-MM-DD"},
        {"to", "DATE", "last day (included), YYYY-MM-DD"},
        {"month", "YYYY-MM", "one month"},
        {"last", "DAYS", "the last N days, today included, e.g. 7d"},
        {"from-sequence", "N", "first command to list (default 1)"},
        {"limit", "N", "most events to list, 1..1000 (default 100)"}},
       "voucherctl admin audit log --last 7d\n"
       "voucherctl admin audit log --object CV-2026-000001 -o json",
       AuditLog},
      {"admin audit verify",
       "Check the hash chain, balances and invariants of the journal",
       "",
       nullptr,
       {},
       "voucherctl admin audit verify",
       AuditVerify},

      {"admin report", "Month-end reports: usage, caps, expiring vouchers"},
      {"admin report usage",
       "Usage of a period summed by enterprise, provider, program, class, SME "
       "or month",
       "",
       nullptr,
       {{"by", "GROUPS",
         "comma separated: enterprise, provider, program, class, sme, month "
         "(default: only the total)"},
        {"from", "DATE", "first day, YYYY-MM-DD"},
        {"to", "DATE", "last day (included), YYYY-MM-DD"},
        {"month", "YYYY-MM", "one month"},
        {"last", "DAYS", "the last N days, today included, e.g. 30d"},
        {"program", "PROGRAM_ID", "only usage this program paid for"},
        {"enterprise", "ENTERPRISE_ID", "only this enterprise's usage"},
        {"provider", "PROVIDER_ID", "only usage on this provider's clusters"}},
       "voucherctl admin report usage --month 2026-11 --by enterprise\n"
       "voucherctl admin report usage --last 30d --by provider,class -o csv "
       "--encoding gb18030 > usage.csv",
       ReportUsage},
      {"admin report caps",
       "Each enterprise's use of its annual cap in each capped program",
       "",
       nullptr,
       {{"program", "PROGRAM_ID", "only this program (even if uncapped)"},
        {"enterprise", "ENTERPRISE_ID", "only this enterprise"},
        {"year", "YEAR", "year of issue (default: this year)"}},
       "voucherctl admin report caps --program P-000001",
       ReportCaps},
      {"admin report expiring",
       "Vouchers ending within N days with money still on them",
       "",
       nullptr,
       {{"days", "DAYS", "how far ahead, e.g. 30d (1..3660)", true},
        {"program", "PROGRAM_ID", "only this program's"},
        {"enterprise", "ENTERPRISE_ID", "only this enterprise's"}},
       "voucherctl admin report expiring --days 30d",
       ReportExpiring},

      // Setup.
      {"version",
       "Show voucherctl's version and git revision",
       "",
       nullptr,
       {},
       "voucherctl version",
       Version},
      {"completion",
       "Print a script that completes voucherctl's commands and flags in "
       "bash or zsh",
       "SHELL",
       nullptr,
       {},
       "voucherctl completion bash > "
       "/usr/share/bash-completion/completions/voucherctl\n"
       "source <(voucherctl completion bash)\n"
       "voucherctl completion zsh > \"${fpath[1]}/_voucherctl\"",
       Completion},
      {"whoami",
       "Show the token these settings use: role, holder, expiry, last use",
       "",
       nullptr,
       {},
       "voucherctl whoami",
       WhoAmI},
      {"login",
       "Check a token with the scheduler and save it, the endpoint and TLS "
       "files for later commands (as --profile, default: the profile in use)",
       "",
       nullptr,
       {{"no-check", nullptr,
         "save without asking the scheduler whether it takes the token"}},
       "voucherctl login --endpoint scheduler.example.cn:7443 --token "
       "cvt_...\n"
       "voucherctl login --endpoint 127.0.0.1:7443 < data/admin.token\n"
       "voucherctl login --profile staging --endpoint 10.0.0.9 --token "
       "cvt_...",
       Login},
      {"profile", "Switch between saved schedulers and tokens"},
      {"profile list",
       "List the saved profiles; * marks the one commands use",
       "",
       nullptr,
       {},
       "voucherctl profile list",
       ProfileList},
      {"profile use",
       "Make commands use profile NAME (created by login --profile NAME)",
       "NAME",
       nullptr,
       {},
       "voucherctl profile use staging\nvoucherctl profile use default",
       ProfileUse},
      {"profile delete",
       "Delete profile NAME and its saved token",
       "NAME",
       nullptr,
       {},
       "voucherctl profile delete staging",
       ProfileDelete},
  };
  return *kCommands;
}

std::string Context::RequestId(int part) const {
  std::string base = args.Value("request-id");
  if (base.empty()) {
    if (random_id_.empty()) {
      std::random_device random;
      random_id_ = absl::StrFormat("vctl-%08x%08x", random(), random());
    }
    base = random_id_;
  }
  return part > 0 ? absl::StrCat(base, "-", part) : base;
}

absl::StatusOr<Validity> ParseValidity(absl::string_view from_name,
                                       absl::string_view from_text,
                                       absl::string_view until_name,
                                       absl::string_view until_text) {
  Validity v;
  if (!from_text.empty()) {
    ASSIGN_OR_RETURN(const absl::CivilDay day,
                     ParseDateArg(from_name, from_text));
    v.from = ToProto(StartOfDay(day));
  }
  if (!until_text.empty()) {
    ASSIGN_OR_RETURN(const absl::CivilDay day,
                     ParseDateArg(until_name, until_text));
    v.until = ToProto(EndOfDay(day));
  }
  if (v.from.has_value() && v.until.has_value() &&
      v.from->seconds() >= v.until->seconds()) {
    return absl::InvalidArgumentError(absl::StrCat(until_name, ": ", until_text,
                                                   " is before ", from_name,
                                                   " ", from_text));
  }
  return v;
}

absl::Status SetPeriod(const Args& args, bool required,
                       google::protobuf::Timestamp* start,
                       google::protobuf::Timestamp* end) {
  if (required) {
    for (const char* flag : {"from", "to"}) {
      if (!args.Has(flag)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", flag, ": required (a date, YYYY-MM-DD)"));
      }
    }
  }
  ASSIGN_OR_RETURN(const Validity v, ParseValidity("--from", args.Value("from"),
                                                   "--to", args.Value("to")));
  if (v.from.has_value()) *start = *v.from;
  if (v.until.has_value()) *end = *v.until;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::map<std::string, std::string>>> ReadCsvFile(
    const std::string& path, const std::vector<std::string>& required,
    const std::vector<std::string>& optional,
    std::vector<std::string>* row_names) {
  ASSIGN_OR_RETURN(const std::string text, ReadFile(path));
  ASSIGN_OR_RETURN(const std::vector<std::vector<std::string>> records,
                   ParseCsv(path, text));
  if (records.size() < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": needs a header row and at least one row, got ",
                     records.size(), " rows"));
  }
  const std::vector<std::string>& header = records[0];
  for (const std::string& column : header) {
    const auto known = [&](const std::vector<std::string>& names) {
      return std::find(names.begin(), names.end(), column) != names.end();
    };
    if (!known(required) && !known(optional)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": unknown column \"", column, "\"; columns are ",
                       absl::StrJoin(required, ","), " and optionally ",
                       absl::StrJoin(optional, ",")));
    }
  }
  for (const std::string& column : required) {
    if (std::find(header.begin(), header.end(), column) == header.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": the header row lacks column \"", column, "\""));
    }
  }
  std::vector<std::map<std::string, std::string>> rows;
  for (size_t r = 1; r < records.size(); ++r) {
    if (records[r].size() != header.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, " row ", r, ": has ", records[r].size(),
                       " fields, the header ", header.size()));
    }
    std::map<std::string, std::string>& row = rows.emplace_back();
    for (size_t i = 0; i < header.size(); ++i) row[header[i]] = records[r][i];
    row_names->push_back(absl::StrCat(path, " row ", r));
  }
  return rows;
}

}  // namespace computevoucher::client
