// Runs the real voucherctl binary as a user would, against a real
// voucher-scheduler: golden tables, parsed JSON and CSV, every exit code,
// bad input of each argument type, login and the precedence of settings.
// Scheduler replicas that follow (or lead) are played by in-process fakes,
// to check that voucherctl finds the leader.
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/config.h"
#include "common/leader.h"
#include "common/money.h"
#include "common/time_util.h"
#include "computevoucher/v1/admin.grpc.pb.h"
#include "computevoucher/v1/agent.grpc.pb.h"
#include "computevoucher/v1/config.pb.h"
#include "computevoucher/v1/enterprise.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/server_context.h"
#include "gtest/gtest.h"
#include "tests/testing/binaries.h"
#include "tests/testing/world.h"
#include "tests/testing/temp_dir.h"

extern char** environ;

namespace computevoucher {
namespace {

using ::computevoucher::testing::MakeTempDir;
using ::computevoucher::testing::TempDir;

namespace pb = ::computevoucher::v1;
using ::computevoucher::testing::BuildDir;
using ::computevoucher::testing::ChildProcess;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

struct Result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::ostream& operator<<(std::ostream& os, const Result& r) {
  return os << "exit " << r.exit_code << "\nstdout:\n"
            << r.out << "stderr:\n"
            << r.err;
}

std::string Slurp(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  return text.ok() ? *text : "";
}

// Splits CSV output without quoted fields into rows of fields.
std::vector<std::vector<std::string>> SimpleCsv(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  for (absl::string_view line :
       absl::StrSplit(text, "\r\n", absl::SkipEmpty())) {
    rows.push_back(absl::StrSplit(line, ','));
  }
  return rows;
}

template <typename M>
M ParseJson(const std::string& json) {
  M message;
  const auto status =
      google::protobuf::util::JsonStringToMessage(json, &message);
  EXPECT_TRUE(status.ok()) << status << "\n" << json;
  return message;
}

using testing::DeadAddress;

// A scheduler replica played in process. It follows (refuses every call
// with UNAVAILABLE, naming the leader in cv-leader when it knows one) or
// leads (answers ListPrograms, RegisterProvider and GetBalance with
// "fake" objects). Records every call and the request ids of
// RegisterProvider. Thread-safe.
class FakeReplica {
 public:
  // Listens on 127.0.0.1:`port` (0: any free port).
  explicit FakeReplica(int port = 0) : admin_(*this), enterprise_(*this) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort(absl::StrCat("127.0.0.1:", port),
                             grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&admin_);
    builder.RegisterService(&enterprise_);
    server_ = builder.BuildAndStart();
    EXPECT_NE(server_, nullptr);
    EXPECT_GT(port_, 0);
  }
  ~FakeReplica() {
    if (server_ != nullptr) server_->Shutdown();
  }

  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

  void Lead() {
    absl::MutexLock lock(&mu_);
    leads_ = true;
  }
  // Follows `leader` ("" for none known yet).
  void Follow(const std::string& leader) {
    absl::MutexLock lock(&mu_);
    leads_ = false;
    leader_ = leader;
  }
  // The next `n` calls are refused naming no leader, whatever else is set.
  void KnowNoLeaderFor(int n) {
    absl::MutexLock lock(&mu_);
    no_leader_calls_ = n;
  }
  int calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  std::vector<std::string> request_ids() {
    absl::MutexLock lock(&mu_);
    return request_ids_;
  }

 private:
  class Admin final : public pb::AdminService::Service {
   public:
    explicit Admin(FakeReplica& replica) : replica_(replica) {}
    grpc::Status ListPrograms(grpc::ServerContext* context,
                              const pb::ListProgramsRequest*,
                              pb::ListProgramsResponse* response) override {
      grpc::Status refused = replica_.Refuse(*context, "");
      if (!refused.ok()) return refused;
      pb::Program* program = response->add_programs();
      program->set_program_id("P-FAKE");
      program->set_name("fake program");
      return grpc::Status::OK;
    }
    grpc::Status RegisterProvider(grpc::ServerContext* context,
                                  const pb::RegisterProviderRequest* request,
                                  pb::Provider* response) override {
      grpc::Status refused = replica_.Refuse(*context, request->request_id());
      if (!refused.ok()) return refused;
      response->set_provider_id("PR-FAKE");
      response->set_name(request->name());
      return grpc::Status::OK;
    }

   private:
    FakeReplica& replica_;
  };
  class Enterprise final : public pb::EnterpriseService::Service {
   public:
    explicit Enterprise(FakeReplica& replica) : replica_(replica) {}
    grpc::Status GetBalance(grpc::ServerContext* context,
                            const pb::GetBalanceRequest*,
                            pb::Balance* response) override {
      grpc::Status refused = replica_.Refuse(*context, "");
      if (!refused.ok()) return refused;
      response->set_enterprise_id("E-FAKE");
      return grpc::Status::OK;
    }

   private:
    FakeReplica& replica_;
  };

  // Records the call; OK when this replica leads, else the refusal.
  grpc::Status Refuse(grpc::ServerContext& context,
                      const std::string& request_id) {
    absl::MutexLock lock(&mu_);
    ++calls_;
    if (!request_id.empty()) request_ids_.push_back(request_id);
    if (no_leader_calls_ > 0) {
      --no_leader_calls_;
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "not the leader: this replica follows; no leader "
                          "is known yet");
    }
    if (leads_) return grpc::Status::OK;
    if (leader_.empty()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "not the leader: this replica follows; no leader "
                          "is known yet");
    }
    context.AddTrailingMetadata(kLeaderMetadataKey, leader_);
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        absl::StrCat("not the leader: this replica follows; "
                                     "the leader is at ",
                                     leader_));
  }

  Admin admin_;
  Enterprise enterprise_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  absl::Mutex mu_;
  bool leads_ ABSL_GUARDED_BY(mu_) = false;
  std::string leader_ ABSL_GUARDED_BY(mu_);
  int no_leader_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> request_ids_ ABSL_GUARDED_BY(mu_);
};

class VoucherctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(MakeTempDir("voucherctl", temp_));
    dir_ = temp_.path();
    scheduler_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{BuildDir() + "/scheduler/voucher-scheduler",
                                 "--data-dir", dir_ + "/data", "--listen",
                                 "127.0.0.1:0", "--port-file", dir_ + "/port"},
        dir_ + "/scheduler.log");
    const int port = testing::WaitForPortFile(*scheduler_, dir_ + "/port");
    ASSERT_GT(port, 0);
    endpoint_ = absl::StrCat("127.0.0.1:", port);
    ASSERT_TRUE(testing::PollUntil(
        [&] { return !Slurp(dir_ + "/data/admin.token").empty(); }));
    admin_token_ = std::string(
        absl::StripAsciiWhitespace(Slurp(dir_ + "/data/admin.token")));
  }

  void TearDown() override {
    scheduler_.reset();
  }

  // Restarts the scheduler on the same data with `extra_args`.
  void Restart(const std::vector<std::string>& extra_args) {
    scheduler_.reset();
    std::filesystem::remove(dir_ + "/port");
    std::vector<std::string> args = {
        BuildDir() + "/scheduler/voucher-scheduler",
        "--data-dir",
        dir_ + "/data",
        "--listen",
        "127.0.0.1:0",
        "--port-file",
        dir_ + "/port"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    scheduler_ = std::make_unique<ChildProcess>(std::move(args),
                                                dir_ + "/scheduler.log");
    const int port = testing::WaitForPortFile(*scheduler_, dir_ + "/port");
    ASSERT_GT(port, 0);
    endpoint_ = absl::StrCat("127.0.0.1:", port);
  }

  // Runs voucherctl with `args`, an environment of only HOME,
  // XDG_CONFIG_HOME (both in the test's folder) and `env`, and `input` on
  // standard input.
  Result Run(const std::vector<std::string>& args,
             const std::vector<std::string>& env = {},
             const std::string& input = "") {
    const std::string n = std::to_string(++runs_);
    const std::string in = dir_ + "/in." + n, out = dir_ + "/out." + n,
                      err = dir_ + "/err." + n;
    std::ofstream(in) << input;
    std::vector<std::string> argv = {BuildDir() + "/client/voucherctl"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::map<std::string, std::string> vars = {
        {"HOME", dir_ + "/home"}, {"XDG_CONFIG_HOME", dir_ + "/config"}};
    for (const std::string& e : env) {
      const size_t eq = e.find('=');
      vars[e.substr(0, eq)] = e.substr(eq + 1);
    }
    std::vector<std::string> envs;
    for (const auto& [name, value] : vars) envs.push_back(name + "=" + value);
    std::vector<char*> argp, envp;
    for (std::string& a : argv) argp.push_back(a.data());
    argp.push_back(nullptr);
    for (std::string& e : envs) envp.push_back(e.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, in.c_str(), O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, out.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, err.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = -1;
    Result r;
    if (posix_spawn(&pid, argp[0], &actions, nullptr, argp.data(),
                    envp.data()) == 0) {
      int status = 0;
      waitpid(pid, &status, 0);
      r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    posix_spawn_file_actions_destroy(&actions);
    r.out = Slurp(out);
    r.err = Slurp(err);
    return r;
  }

  // Runs voucherctl with `token` against the test's scheduler.
  Result As(const std::string& token, std::vector<std::string> args) {
    return Run(args, {"VOUCHERCTL_ENDPOINT=" + endpoint_,
                      "VOUCHERCTL_TOKEN=" + token});
  }
  Result Admin(std::vector<std::string> args) {
    return As(admin_token_, std::move(args));
  }

  // Writes `text` to a file in the test's folder and returns its path.
  std::string File(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  // The standard world through voucherctl itself: program P-000001, two
  // providers (flags), three enterprises (CSV import; the third's name has
  // a comma and quotes), vouchers from a CSV batch (E-000001: 1M and 50万;
  // E-000002: 200k). Returns E-000001's enterprise token.
  std::string BuildWorld() {
    const pb::CreateProgramRequest program = testing::WorldProgram();
    EXPECT_EQ(Admin({"admin",
                     "program",
                     "create",
                     "--name",
                     program.name(),
                     "--issuer",
                     program.issuer(),
                     "--budget",
                     "250M",
                     "--valid-from",
                     "2025-01-01",
                     "--valid-until",
                     "2035-12-31",
                     "--domestic-ratio",
                     "30%",
                     "--other-ratio",
                     "20",
                     "--sme-ratio",
                     "50%",
                     "--cap",
                     "8,000,000.00",
                     "--categories",
                     "整机,软件算法,科研平台"})
                  .exit_code,
              0);
    for (const pb::RegisterProviderRequest& p : testing::WorldProviders()) {
      EXPECT_EQ(Admin({"admin", "provider", "add", "--name", p.name(),
                       "--credit-code", p.credit_code()})
                    .exit_code,
                0);
    }
    std::string csv = "name,credit_code,category,district,sme,related\r\n";
    const std::vector<pb::RegisterEnterpriseRequest> enterprises =
        testing::WorldEnterprises();
    for (size_t i = 0; i < enterprises.size(); ++i) {
      const pb::RegisterEnterpriseRequest& e = enterprises[i];
      const std::string name =
          i == 2 ? "\"北京人形机器人创新中心, \"\"BHRIC\"\"\"" : e.name();
      absl::StrAppend(&csv, name, ",", e.credit_code(), ",", e.category(), ",",
                      e.district(), ",", e.sme() ? "yes" : "no", ",",
                      absl::StrJoin(e.related_provider_ids(), " "), "\r\n");
    }
    const Result imported =
        Admin({"admin", "enterprise", "import", File("enterprises.csv", csv)});
    EXPECT_EQ(imported.exit_code, 0) << imported;
    const Result batch =
        Admin({"admin", "voucher", "issue-batch",
               File("vouchers.csv",
                    "program,enterprise,amount,valid_from,priority\n"
                    "P-000001,E-000001,1M,2025-01-01,10\n"
                    "P-000001,E-000001,50万,2025-01-01,0\n"
                    "P-000001,E-000002,200k,2025-01-01,0\n"),
               "-o", "json"});
    EXPECT_EQ(batch.exit_code, 0) << batch;
    const auto issued = ParseJson<pb::BatchIssueVouchersResponse>(batch.out);
    EXPECT_EQ(issued.vouchers_size(), 3);
    if (issued.vouchers_size() > 0) {
      voucher_prefix_ = issued.vouchers(0).voucher_id().substr(0, 7);
    }
    return CreateToken({"--role", "enterprise", "--enterprise", "E-000001"});
  }

  // Creates a token with `flags`; returns its secret.
  std::string CreateToken(std::vector<std::string> flags) {
    std::vector<std::string> args = {"admin", "token", "create", "-o", "json"};
    args.insert(args.end(), flags.begin(), flags.end());
    const Result r = Admin(args);
    EXPECT_EQ(r.exit_code, 0) << r;
    EXPECT_THAT(r.err, HasSubstr("shown only this once"));
    return ParseJson<pb::CreateTokenResponse>(r.out).secret();
  }

  // The agent of cluster hz-a, talking to the test's scheduler.
  struct AgentClient {
    std::unique_ptr<pb::AgentService::Stub> stub;
    std::string token;

    template <typename Method, typename Request, typename Response>
    grpc::Status Call(Method method, const Request& request,
                      Response* response) const {
      grpc::ClientContext context;
      context.AddMetadata("authorization", "Bearer " + token);
      return ((*stub).*method)(&context, request, response);
    }
  };

  // Cluster hz-a (PR-000001, 8 × H100 at `price_fen_per_gpu_hour`)
  // registered through a new agent token and approved by an admin.
  AgentClient ApprovedCluster(int64_t price_fen_per_gpu_hour) {
    AgentClient agent;
    agent.token =
        CreateToken({"--role", "agent", "--cluster", "hz-a", "--provider",
                     "PR-000001", "--description", "hz-a agent"});
    agent.stub = pb::AgentService::NewStub(
        grpc::CreateChannel(endpoint_, grpc::InsecureChannelCredentials()));
    pb::RegisterRequest registration;
    registration.set_request_id("register-1");
    registration.set_region("cn-hangzhou");
    registration.set_meter("slurm+simulated");
    pb::GpuModel* h100 = registration.add_inventory();
    h100->set_model("H100");
    h100->set_hardware_class(pb::HARDWARE_CLASS_OTHER);
    h100->set_gpu_count(8);
    h100->set_price_fen_per_gpu_hour(price_fen_per_gpu_hour);
    pb::RegisterResponse registered;
    const grpc::Status s = agent.Call(&pb::AgentService::Stub::Register,
                                      registration, &registered);
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_THAT(
        Admin({"admin", "cluster", "list", "--state", "pending-approval"}).out,
        HasSubstr("hz-a  PR-000001  cn-hangzhou  pending-approval"));
    EXPECT_EQ(Admin({"admin", "cluster", "approve", "hz-a"}).exit_code, 0);
    return agent;
  }

  // "CV-YYYY" replaced by the prefix the scheduler gave the vouchers.
  std::string WithVoucherYear(const std::string& text) {
    return absl::StrReplaceAll(text, {{"CV-YYYY", voucher_prefix_}});
  }

  TempDir temp_;  // destroyed after the members declared below
  std::string dir_;
  std::string endpoint_;
  std::string admin_token_;
  std::string voucher_prefix_ = "CV-YYYY";
  std::unique_ptr<ChildProcess> scheduler_;
  int runs_ = 0;
};

TEST_F(VoucherctlTest, HelpListsCommandsAndEveryCommandHasUsageAndExample) {
  const Result root = Run({});
  EXPECT_EQ(root.exit_code, 0);
  EXPECT_EQ(Run({"help"}).out, root.out);
  EXPECT_THAT(root.out, AllOf(HasSubstr("Usage:\n  voucherctl COMMAND"),
                              HasSubstr("admin voucher issue-batch"),
                              HasSubstr("-o, --output FORMAT")));
  // Every command listed has a help with a usage line, flags and example.
  std::vector<std::string> commands;
  const std::string listed(root.out.substr(
      root.out.find("Commands:\n") + 10,
      root.out.find("\nGlobal flags") - root.out.find("Commands:\n") - 10));
  for (absl::string_view line :
       absl::StrSplit(listed, '\n', absl::SkipEmpty())) {
    const std::string name(
        absl::StripAsciiWhitespace(line.substr(0, line.find("   ", 2))));
    const std::vector<std::string> words = absl::StrSplit(name, ' ');
    std::vector<std::string> args = words;
    args.push_back(commands.size() % 2 == 0 ? "--help" : "-h");
    commands.push_back(name);
    const Result help = Run(args);
    EXPECT_EQ(help.exit_code, 0) << name << "\n" << help;
    EXPECT_THAT(help.out, AllOf(HasSubstr("Usage:\n  voucherctl " + name),
                                HasSubstr("Global flags:"),
                                HasSubstr("Example:\n  voucherctl " + name)))
        << name;
  }
  EXPECT_GE(commands.size(), 40u);
  const Result group = Run({"admin", "voucher"});
  EXPECT_EQ(group.exit_code, 0);
  EXPECT_THAT(group.out,
              AllOf(HasSubstr("voucherctl admin voucher COMMAND"),
                    HasSubstr("  issue-batch "), HasSubstr("  revoke ")));
  EXPECT_THAT(Run({"help", "allocate"}).out,
              HasSubstr("--gpus N               number of GPUs, 1..1024 "
                        "(required)"));
}

TEST_F(VoucherctlTest, BadInputIsAUsageErrorNamingArgumentValueAndRule) {
  const struct {
    std::vector<std::string> args;
    std::string message;
  } cases[] = {
      // Counts.
      {{"allocate", "--model", "H100", "--gpus", "0", "--hours", "1"},
       "--gpus: must be a whole number 1..1024, got \"0\""},
      {{"allocate", "--model", "H100", "--gpus", "-1", "--hours", "1"},
       "--gpus: must be a whole number 1..1024, got \"-1\""},
      {{"quote", "--model", "H100", "--gpus", "x", "--hours", "1"},
       "--gpus: must be a whole number 1..1024, got \"x\""},
      {{"admin", "voucher", "issue", "--program", "P-000001", "--enterprise",
        "E-000001", "--amount", "1", "--priority", "1001"},
       "--priority: must be a whole number 0..1000, got \"1001\""},
      // Hours and durations.
      {{"quote", "--model", "H100", "--gpus", "1", "--hours", "0"},
       "--hours: must be a number of hours from 0.017 (one minute) to 8760"},
      {{"allocations", "watch", "AL-000001", "--interval", "soon"},
       "--interval: must be a duration of at least 100ms such as 2s or "
       "500ms, got \"soon\""},
      // Amounts.
      {{"admin", "voucher", "issue", "--program", "P-000001", "--enterprise",
        "E-000001", "--amount", "12.345"},
       "--amount: amount \"12.345\""},
      {{"apply", "--program", "P-000001", "--amount", "abc", "--purpose", "x"},
       "--amount: amount \"abc\""},
      {{"apply", "--program", "P-000001", "--amount", "-5", "--purpose", "x"},
       "--amount: must be an amount above 0 CNY, got \"-5\""},
      {{"admin", "program", "create", "--name", "n", "--issuer", "i",
        "--budget", "1M", "--valid-from", "2025-01-01", "--valid-until",
        "2025-12-31", "--domestic-ratio", "130%", "--other-ratio", "20"},
       "--domestic-ratio: must be a percentage 0..100 with at most two "
       "decimals, e.g. 30% or 12.5, got \"130%\""},
      // Dates.
      {{"statement", "--from", "2025-13-01", "--to", "2025-12-31"},
       "--from: \"2025-13-01\" is not a date of the form YYYY-MM-DD"},
      {{"statement", "--from", "2025-03-31", "--to", "2025-03-01"},
       "--to: 2025-03-01 is before --from 2025-03-31"},
      {{"admin", "settlement", "--from", "2025-03-01"},
       "missing required flag --to DATE"},
      // Ids and choices.
      {{"vouchers", "show", "CV 1"},
       "VOUCHER_ID: must be an id of 1..128 characters of [A-Za-z0-9._:-], "
       "got \"CV 1\""},
      {{"admin", "voucher", "list", "--enterprise", "E/1"},
       "--enterprise: must be an id of 1..128 characters"},
      {{"vouchers", "list", "--state", "lost"},
       "--state: must be one of active, suspended, revoked, expired, "
       "exhausted, got \"lost\""},
      {{"quote", "--class", "gold", "--gpus", "1", "--hours", "1"},
       "--class: must be one of domestic, other, got \"gold\""},
      {{"quote", "--model", "H100", "--class", "other", "--gpus", "1",
        "--hours", "1"},
       "--model, --class: give exactly one"},
      {{"admin", "token", "create", "--role", "enterprise"},
       "--enterprise: required with --role enterprise"},
      {{"vouchers", "list", "-o", "yaml"},
       "-o: must be one of table, json, csv, got \"yaml\""},
      {{"admin", "audit", "verify", "--request-id", "a b"}, "--request-id: "},
      // Replicas and how long to wait for one to lead.
      {{"admin", "audit", "verify", "--endpoint", "127.0.0.1:1,,127.0.0.1:2"},
       "--endpoint: \"127.0.0.1:1,,127.0.0.1:2\" must be one address or a "
       "comma-separated list of addresses (host:port), none empty"},
      {{"admin", "audit", "verify", "--leader-wait", "soon"},
       "--leader-wait: must be a duration of at least 0 such as 2s or 500ms, "
       "got \"soon\""},
      {{"admin", "audit", "verify", "--leader-wait", "-1s"},
       "--leader-wait: must be a duration of at least 0 such as 2s or 500ms, "
       "got \"-1s\""},
      // The command line itself.
      {{"vouchrs", "list"},
       "unknown command \"vouchrs\" for \"voucherctl\"; did you mean "
       "\"vouchers\"?"},
      {{"vouchers", "list", "--colour"},
       "voucherctl vouchers list: unknown flag --colour"},
      {{"vouchers", "show"},
       "voucherctl vouchers show: missing argument "
       "VOUCHER_ID"},
      {{"balance", "extra"}, "unexpected argument \"extra\""},
      {{"allocate", "--model"}, "--model: needs a value (MODEL"},
      {{"balance", "--", "x"}, "voucherctl balance takes no arguments after"},
      {{"admin", "enterprise", "import", "/nonexistent.csv"},
       "/nonexistent.csv"},
  };
  for (const auto& c : cases) {
    const Result r = Admin(c.args);
    EXPECT_EQ(r.exit_code, 2) << absl::StrJoin(c.args, " ") << "\n" << r;
    EXPECT_THAT(r.err, AllOf(HasSubstr(c.message), HasSubstr("--help")))
        << absl::StrJoin(c.args, " ");
    EXPECT_EQ(r.out, "") << absl::StrJoin(c.args, " ");
  }
}

TEST_F(VoucherctlTest, TablesAreGolden) {
  const std::string enterprise = BuildWorld();
  EXPECT_EQ(Admin({"admin", "program", "list"}).out,
            "ID        NAME                         BUDGET            "
            "UNISSUED          VALID FROM                  VALID UNTIL\n"
            "P-000001  杭州市人形机器人算力券 2025  250000000.00 CNY  "
            "248300000.00 CNY  2025-01-01 00:00:00 +08:00  "
            "2036-01-01 00:00:00 +08:00\n");
  EXPECT_EQ(
      As(enterprise, {"vouchers", "list"}).out,
      WithVoucherYear(
          "ID              PROGRAM   ENTERPRISE  STATE   FACE VALUE      "
          "AVAILABLE       HELD      CHARGED   VALID UNTIL\n"
          "CV-YYYY-000001  P-000001  E-000001    active  1000000.00 CNY  "
          "1000000.00 CNY  0.00 CNY  0.00 CNY  2036-01-01 00:00:00 +08:00\n"
          "CV-YYYY-000002  P-000001  E-000001    active   500000.00 CNY   "
          "500000.00 CNY  0.00 CNY  0.00 CNY  2036-01-01 00:00:00 +08:00\n"));
  EXPECT_EQ(As(enterprise, {"balance"}).out,
            "Enterprise:       E-000001\n"
            "Available:        1500000.00 CNY\n"
            "Held:             0.00 CNY\n"
            "Charged:          0.00 CNY\n"
            "Active vouchers:  2\n");
  EXPECT_EQ(As(enterprise, {"balance", "--utc", "-o", "csv"}).out,
            "enterprise_id,available_cny,held_cny,charged_cny,active_vouchers"
            "\r\nE-000001,1500000.00,0.00,0.00,2\r\n");
  EXPECT_THAT(Admin({"admin", "program", "show", "P-000001", "--utc"}).out,
              AllOf(HasSubstr("\nValid from:          2024-12-31T16:00:00Z\n"),
                    HasSubstr("\nSME ratio:           50%\n"),
                    HasSubstr("\nCap per enterprise:  8000000.00 CNY\n")));
}

TEST_F(VoucherctlTest, JsonAndCsvParse) {
  BuildWorld();
  const Result json = Admin({"admin", "voucher", "list", "-o", "json"});
  ASSERT_EQ(json.exit_code, 0) << json;
  const auto vouchers = ParseJson<pb::AdminListVouchersResponse>(json.out);
  ASSERT_EQ(vouchers.vouchers_size(), 3);
  EXPECT_EQ(vouchers.vouchers(1).face_value_fen(), 500'000'00);
  EXPECT_EQ(vouchers.vouchers(0).priority(), 10);
  EXPECT_EQ(vouchers.vouchers(2).enterprise_id(), "E-000002");

  const Result csv = Admin({"admin", "voucher", "list", "-o", "csv",
                            "--enterprise", "E-000001", "--state", "active"});
  ASSERT_EQ(csv.exit_code, 0) << csv;
  const auto rows = SimpleCsv(csv.out);
  ASSERT_EQ(rows.size(), 3u) << csv.out;
  EXPECT_THAT(rows[0], ElementsAre("voucher_id", "program_id", "enterprise_id",
                                   "state", "face_value_cny", "available_cny",
                                   "held_cny", "charged_cny", "valid_until"));
  EXPECT_EQ(rows[2][4], "500000.00");
  EXPECT_EQ(rows[2][3], "active");

  // RFC 4180: a field with a comma or quotes is quoted, quotes doubled.
  const Result enterprises =
      Admin({"admin", "enterprise", "list", "-o", "csv"});
  EXPECT_THAT(enterprises.out,
              HasSubstr("E-000003,\"北京人形机器人创新中心, \"\"BHRIC\"\"\","
                        "91110108551385082Q,科研平台,余杭区,no,-\r\n"));
  EXPECT_THAT(enterprises.out,
              HasSubstr("E-000002,福州灵巧手算法有限公司,91350100M000100Y43,"
                        "软件算法,余杭区,yes,PR-000002\r\n"));
}

TEST_F(VoucherctlTest, ExitCodesSayWhoFailed) {
  const std::string enterprise = BuildWorld();
  // 0: success.
  EXPECT_EQ(Admin({"admin", "audit", "verify"}).exit_code, 0);
  // 1: the server refused, with its message and the code in words.
  const Result missing = Admin({"admin", "program", "show", "P-999999"});
  EXPECT_EQ(missing.exit_code, 1) << missing;
  EXPECT_THAT(missing.err,
              HasSubstr("voucherctl: not found: program P-999999 not "
                        "found"));
  const Result denied = As(enterprise, {"admin", "program", "list"});
  EXPECT_EQ(denied.exit_code, 1);
  EXPECT_THAT(denied.err, HasSubstr("voucherctl: permission denied: "));
  const Result wrong = As("cvt_wrong", {"balance"});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_THAT(wrong.err,
              AllOf(HasSubstr("voucherctl: unauthenticated: "),
                    HasSubstr("Check the token (--token, VOUCHERCTL_TOKEN")));
  const Result over =
      Admin({"admin", "voucher", "issue", "--program", "P-000001",
             "--enterprise", "E-000001", "--amount", "7M"});
  EXPECT_EQ(over.exit_code, 1);
  EXPECT_THAT(over.err, HasSubstr("voucherctl: failed precondition: "));
  const Result batch = Admin(
      {"admin", "voucher", "issue-batch",
       File("bad.csv", "program,enterprise,amount\nP-000001,E-000404,1\n")});
  EXPECT_EQ(batch.exit_code, 1) << batch;
  EXPECT_THAT(batch.err,
              HasSubstr("nothing was issued:\n  " + dir_ + "/bad.csv row 1: "));
  // 2: usage, checked before anything is sent.
  EXPECT_EQ(Admin({"admin", "program", "show"}).exit_code, 2);
  // 3: nobody answered.
  const Result down = Run({"--endpoint", "127.0.0.1:1", "--token", admin_token_,
                           "admin", "program", "list"});
  EXPECT_EQ(down.exit_code, 3) << down;
  EXPECT_THAT(down.err,
              AllOf(HasSubstr("cannot reach the scheduler at 127.0.0.1:1 "
                              "(from --endpoint)"),
                    HasSubstr("point --endpoint at it")));
  // No token at all is a usage error that says where a token comes from.
  const Result no_token = Run({"--endpoint", endpoint_, "balance"});
  EXPECT_EQ(no_token.exit_code, 2);
  EXPECT_THAT(no_token.err, HasSubstr("no token: pass --token"));
}

TEST_F(VoucherctlTest, LoginWritesAPrivateConfigThatLaterCommandsUse) {
  const Result login =
      Run({"login", "--endpoint", endpoint_}, {}, admin_token_ + "\n");
  ASSERT_EQ(login.exit_code, 0) << login;
  const std::string path = dir_ + "/config/voucherctl/config";
  EXPECT_THAT(login.out, HasSubstr(path + " (mode 0600)"));
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  pb::ClientConfig config;
  ASSERT_TRUE(LoadTextProto(path, &config).ok());
  EXPECT_EQ(config.endpoint(), endpoint_);
  EXPECT_EQ(config.token(), admin_token_);
  EXPECT_EQ(Run({"admin", "program", "list"}).exit_code, 0);

  // A second login replaces the file; with no XDG_CONFIG_HOME it goes to
  // ~/.config.
  EXPECT_EQ(Run({"login", "--token", "cvt_other"}).exit_code, 0);
  ASSERT_TRUE(LoadTextProto(path, &config).ok());
  EXPECT_EQ(config.token(), "cvt_other");
  EXPECT_EQ(config.endpoint(), endpoint_);
  EXPECT_EQ(Run({"login", "--endpoint", endpoint_}, {"XDG_CONFIG_HOME="},
                "cvt_home\n")
                .exit_code,
            0);
  EXPECT_THAT(Slurp(dir_ + "/home/.config/voucherctl/config"),
              HasSubstr("cvt_home"));
  // No token anywhere is a usage error.
  const Result no_token =
      Run({"login"}, {"XDG_CONFIG_HOME=", "HOME=" + dir_ + "/elsewhere"}, "");
  EXPECT_EQ(no_token.exit_code, 2);
  EXPECT_THAT(no_token.err, HasSubstr("login: no token: pass --token TOKEN"));
}

TEST_F(VoucherctlTest, FlagsOverrideEnvironmentOverrideConfigFile) {
  ASSERT_EQ(Run({"login", "--endpoint", endpoint_, "--token", admin_token_})
                .exit_code,
            0);
  const std::vector<std::string> list = {"admin", "program", "list"};
  // The file alone works.
  EXPECT_EQ(Run(list).exit_code, 0);
  // The environment overrides the file...
  const Result env_endpoint = Run(list, {"VOUCHERCTL_ENDPOINT=127.0.0.1:1"});
  EXPECT_EQ(env_endpoint.exit_code, 3);
  EXPECT_THAT(env_endpoint.err, HasSubstr("(from VOUCHERCTL_ENDPOINT)"));
  EXPECT_EQ(Run(list, {"VOUCHERCTL_TOKEN=cvt_wrong"}).exit_code, 1);
  // ...and flags override the environment.
  std::vector<std::string> with_flags = list;
  with_flags.insert(with_flags.end(),
                    {"--endpoint", endpoint_, "--token", admin_token_});
  EXPECT_EQ(Run(with_flags, {"VOUCHERCTL_ENDPOINT=127.0.0.1:1",
                             "VOUCHERCTL_TOKEN=cvt_wrong"})
                .exit_code,
            0);
  EXPECT_EQ(
      Run({"--endpoint=127.0.0.1:1", "admin", "program", "list"}).exit_code, 3);
}

TEST_F(VoucherctlTest, EnterpriseRedeemsAVoucherAndSeesUsageAndStatement) {
  const std::string enterprise = BuildWorld();
  // 10 fen per GPU-millisecond, so that a short record costs something.
  const AgentClient agent = ApprovedCluster(36'000'000);
  ASSERT_FALSE(HasFailure());
  const auto agent_call = [&](auto method, const auto& request,
                              auto* response) {
    return agent.Call(method, request, response);
  };

  const Result quote = As(enterprise, {"quote", "--model", "H100", "--gpus",
                                       "2", "--hours", "0.5", "-o", "json"});
  ASSERT_EQ(quote.exit_code, 0) << quote;
  const auto q = ParseJson<pb::QuoteResponse>(quote.out);
  EXPECT_EQ(q.amounts().cost_fen(), 36'000'000);
  EXPECT_EQ(q.amounts().subsidy_fen(), 7'200'000);
  EXPECT_EQ(q.cluster_id(), "hz-a");

  const Result allocated =
      As(enterprise, {"allocate", "--model", "H100", "--gpus", "2", "--hours",
                      "0.5", "--request-id", "alloc-1", "-o", "json", "--",
                      "python", "train.py", "--epochs=3"});
  ASSERT_EQ(allocated.exit_code, 0) << allocated;
  const auto a = ParseJson<pb::Allocation>(allocated.out);
  EXPECT_EQ(a.state(), pb::ALLOCATION_STATE_ASSIGNED);
  EXPECT_EQ(a.request_id(), "alloc-1");
  EXPECT_THAT(a.workload_command(),
              ElementsAre("python", "train.py", "--epochs=3"));
  // A retry with the same request id is the same allocation.
  const Result retried =
      As(enterprise, {"allocate", "--model", "H100", "--gpus", "2", "--hours",
                      "0.5", "--request-id", "alloc-1", "-o", "json", "--",
                      "python", "train.py", "--epochs=3"});
  EXPECT_EQ(ParseJson<pb::Allocation>(retried.out).allocation_id(),
            a.allocation_id());
  const std::string id = a.allocation_id();
  const Result extended =
      As(enterprise, {"allocations", "extend", id, "--hours", "0.25"});
  EXPECT_THAT(extended.out, HasSubstr("\nHours:                   0.750\n"));

  // The agent reports 200 GPU-ms: cost 20.00 CNY, 20% subsidised.
  pb::ReportUsageRequest report;
  report.set_request_id("usage-1");
  pb::UsageRecord* record = report.add_records();
  record->set_allocation_id(id);
  record->set_sequence(1);
  *record->mutable_start() = a.assigned_at();
  *record->mutable_end() = ToProto(*FromProto("assigned_at", a.assigned_at()) +
                                   absl::Milliseconds(100));
  record->set_gpu_ms(200);
  pb::ReportUsageResponse acks;
  ASSERT_TRUE(testing::PollUntil([&] {
    acks.Clear();
    return agent_call(&pb::AgentService::Stub::ReportUsage, report, &acks)
               .ok() &&
           acks.acks(0).result() != pb::USAGE_RESULT_RETRY;
  }));
  ASSERT_EQ(acks.acks(0).result(), pb::USAGE_RESULT_ACCEPTED)
      << acks.DebugString();

  // What the record was charged (capped at GPUs × the time elapsed so far)
  // is what every report shows.
  const int64_t subsidy_fen = acks.acks(0).subsidy_fen();
  EXPECT_GT(subsidy_fen, 0);
  EXPECT_LE(subsidy_fen, 400);
  const std::string subsidy =
      absl::StrFormat("%d.%02d", subsidy_fen / 100, subsidy_fen % 100);
  const Result usage =
      As(enterprise, {"usage", "--allocation", id, "-o", "csv"});
  ASSERT_EQ(usage.exit_code, 0) << usage;
  const auto usage_rows = SimpleCsv(usage.out);
  ASSERT_EQ(usage_rows.size(), 2u) << usage.out;
  EXPECT_THAT(
      usage_rows[0],
      ElementsAre("allocation_id", "sequence", "start", "end", "gpu_hours",
                  "cost_cny", "subsidy_cny", "unsubsidised_gpu_hours",
                  "voucher_id", "cluster_id"));
  EXPECT_EQ(usage_rows[1][0], id);
  EXPECT_EQ(usage_rows[1][6], subsidy);

  const std::string today =
      absl::FormatTime("%Y-%m-%d", absl::Now(), ShanghaiZone());
  const Result statement = As(
      enterprise, {"statement", "--from", today, "--to", today, "-o", "json"});
  ASSERT_EQ(statement.exit_code, 0) << statement;
  const auto st = ParseJson<pb::Statement>(statement.out);
  ASSERT_EQ(st.lines_size(), 1);
  EXPECT_EQ(st.lines(0).allocation_id(), id);
  EXPECT_EQ(st.total().subsidy_fen(), subsidy_fen);
  EXPECT_EQ(st.total().subsidy_fen() + st.total().self_pay_fen(),
            st.total().cost_fen());
  EXPECT_THAT(As(enterprise, {"statement", "--from", today, "--to", today}).out,
              HasSubstr(absl::StrCat(
                  "total for E-000001: cost ", FormatFen(st.total().cost_fen()),
                  ", subsidy ", subsidy, " CNY, self-pay ",
                  FormatFen(st.total().self_pay_fen()), "\n")));

  const Result settlement = Admin(
      {"admin", "settlement", "--from", today, "--to", today, "-o", "csv"});
  ASSERT_EQ(settlement.exit_code, 0) << settlement;
  const auto settlement_rows = SimpleCsv(settlement.out);
  ASSERT_EQ(settlement_rows.size(), 2u) << settlement.out;
  EXPECT_THAT(settlement_rows[0],
              ElementsAre("provider_id", "program_id", "hardware_class",
                          "records", "gpu_hours", "subsidy_cny", "period_start",
                          "period_end", "journal_sequence", "journal_hash"));
  EXPECT_EQ(settlement_rows[1][0], "PR-000001");
  EXPECT_EQ(settlement_rows[1][2], "other");
  EXPECT_EQ(settlement_rows[1][5], subsidy);
  int64_t sequence = 0;
  EXPECT_TRUE(absl::SimpleAtoi(settlement_rows[1][8], &sequence));
  EXPECT_GT(sequence, 0);
  EXPECT_EQ(settlement_rows[1][9].size(), 64u);

  // Release it; watch prints the end and returns.
  EXPECT_EQ(As(enterprise, {"allocations", "release", id}).exit_code, 0);
  const Result watch =
      As(enterprise, {"allocations", "watch", id, "--interval", "100ms"});
  EXPECT_EQ(watch.exit_code, 0) << watch;
  EXPECT_THAT(watch.out, HasSubstr(id + "  ended (released)"));
  const Result listed =
      As(enterprise, {"allocations", "list", "--state", "ended", "-o", "csv"});
  EXPECT_EQ(SimpleCsv(listed.out).size(), 2u) << listed.out;
  EXPECT_EQ(Admin({"admin", "audit", "verify", "-o", "json"}).exit_code, 0);
}

TEST_F(VoucherctlTest, ShowsHowToReachTheGpusAndWhyTheClusterEndedIt) {
  const std::string enterprise = BuildWorld();
  const AgentClient agent = ApprovedCluster(2'000);
  ASSERT_FALSE(HasFailure());
  const Result allocated = As(enterprise, {"allocate", "--model", "H100",
                                           "--gpus", "1", "--hours", "1"});
  ASSERT_EQ(allocated.exit_code, 0) << allocated;
  const size_t at = allocated.out.find("AL-");
  ASSERT_NE(at, std::string::npos) << allocated;
  const std::string id =
      allocated.out.substr(at, allocated.out.find('\n', at) - at);
  // The agent has not started it yet, so the answer says where to look.
  EXPECT_THAT(allocated.out, HasSubstr("\nAccess:                  -\n"));
  EXPECT_THAT(allocated.err,
              HasSubstr("How to reach its GPUs shows once its cluster has "
                        "started it: 'voucherctl allocations show " +
                        id + "'."));

  // The agent started it and says how to reach it, on two lines.
  pb::HeartbeatRequest beat;
  beat.set_request_id("beat-1");
  pb::ObservedAllocation* o = beat.add_allocations();
  o->set_allocation_id(id);
  o->set_running(true);
  o->set_access("ssh login.hz-a\nsrun --jobid=42 --overlap --pty bash");
  pb::HeartbeatResponse desired;
  ASSERT_TRUE(
      agent.Call(&pb::AgentService::Stub::Heartbeat, beat, &desired).ok());
  const Result shown = As(enterprise, {"allocations", "show", id});
  EXPECT_EQ(shown.exit_code, 0) << shown;
  EXPECT_THAT(shown.out,
              HasSubstr("\nAccess:                  ssh login.hz-a\n"
                        "                         srun --jobid=42 --overlap "
                        "--pty bash\n"));
  const Result json = As(enterprise, {"allocations", "show", id, "-o", "json"});
  EXPECT_EQ(ParseJson<pb::Allocation>(json.out).access(), o->access());

  // The cluster cancelled its job: the reason and what the agent saw.
  o->set_running(false);
  o->set_ended_on_cluster(true);
  o->set_end_detail("slurm job 42 CANCELLED by root");
  beat.set_request_id("beat-2");
  ASSERT_TRUE(
      agent.Call(&pb::AgentService::Stub::Heartbeat, beat, &desired).ok());
  EXPECT_THAT(
      As(enterprise, {"allocations", "show", id}).out,
      HasSubstr("\nEnd reason:              ended-on-cluster: slurm job 42 "
                "CANCELLED by root\n"));
  const auto ended = ParseJson<pb::Allocation>(
      As(enterprise, {"allocations", "show", id, "-o", "json"}).out);
  EXPECT_EQ(ended.end_reason(), pb::END_REASON_ENDED_ON_CLUSTER);
  EXPECT_EQ(ended.end_detail(), "slurm job 42 CANCELLED by root");
  EXPECT_THAT(
      As(enterprise, {"allocations", "watch", id, "--interval", "100ms"}).out,
      HasSubstr(id + "  ended (ended-on-cluster: slurm job 42 CANCELLED by "
                     "root)"));
}

TEST_F(VoucherctlTest, AdminManagesApplicationsVouchersAndTokens) {
  const std::string enterprise = BuildWorld();
  const Result applied =
      As(enterprise, {"apply", "--program", "P-000001", "--amount", "300k",
                      "--purpose", "grasping policy training"});
  ASSERT_EQ(applied.exit_code, 0) << applied;
  EXPECT_THAT(applied.out, HasSubstr("State:            pending\n"));
  EXPECT_THAT(Admin({"admin", "application", "list", "--state", "pending"}).out,
              HasSubstr("AP-000001  P-000001  E-000001    300000.00 CNY  "
                        "pending"));
  const Result approved =
      Admin({"admin", "application", "approve", "AP-000001", "--amount",
             "250000", "--reason", "within cap", "-o", "json"});
  ASSERT_EQ(approved.exit_code, 0) << approved;
  const std::string voucher =
      ParseJson<pb::Application>(approved.out).voucher_id();
  EXPECT_FALSE(voucher.empty());

  EXPECT_THAT(
      Admin({"admin", "voucher", "suspend", voucher, "--reason", "audit"}).out,
      HasSubstr("State:         suspended\n"));
  EXPECT_THAT(Admin({"admin", "voucher", "resume", voucher}).out,
              HasSubstr("State:         active\n"));
  EXPECT_THAT(
      Admin({"admin", "voucher", "revoke", voucher, "--reason", "left"}).out,
      AllOf(HasSubstr("State:         revoked\n"),
            HasSubstr("Returned:      250000.00 CNY\n")));
  EXPECT_THAT(As(enterprise, {"vouchers", "show", voucher}).out,
              HasSubstr("State reason:  left\n"));

  const Result created = Admin({"admin", "token", "create", "--role", "auditor",
                                "--description", "audit office"});
  ASSERT_EQ(created.exit_code, 0) << created;
  EXPECT_THAT(created.out, HasSubstr("Secret:      cvt_"));
  EXPECT_EQ(Admin({"admin", "token", "revoke", "TK-000003"}).exit_code, 0);
  EXPECT_THAT(Admin({"admin", "token", "list"}).out,
              HasSubstr("TK-000003  auditor     -           -        -         "
                        "audit office"));

  // With --secret-file the secret goes to a private file, not the screen.
  const std::string secret_file = dir_ + "/auditor.token";
  const Result to_file = Admin({"admin", "token", "create", "--role", "auditor",
                                "--secret-file", secret_file});
  ASSERT_EQ(to_file.exit_code, 0) << to_file;
  EXPECT_THAT(to_file.out, Not(HasSubstr("cvt_")));
  absl::StatusOr<std::string> written = ReadFile(secret_file);
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_THAT(*written, StartsWith("cvt_"));
  struct stat st;
  ASSERT_EQ(stat(secret_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  EXPECT_EQ(As(std::string(absl::StripAsciiWhitespace(*written)),
               {"admin", "program", "list"})
                .exit_code,
            0);
}

TEST_F(VoucherctlTest, TalksTlsAndMutualTls) {
  ASSERT_TRUE(testing::MakeTestCertificates(dir_));
  const std::string ca = dir_ + "/ca.pem";
  Restart(
      {"--tls-cert", dir_ + "/server.pem", "--tls-key", dir_ + "/server.key"});
  const std::vector<std::string> list = {"admin", "program", "list"};
  auto with = [&](std::vector<std::string> flags) {
    flags.insert(flags.end(), list.begin(), list.end());
    return Admin(flags);
  };
  const Result tls = with({"--tls-ca", ca});
  EXPECT_EQ(tls.exit_code, 0) << tls;
  EXPECT_EQ(with({}).exit_code, 3);  // plaintext toward a TLS server

  Restart({"--tls-cert", dir_ + "/server.pem", "--tls-key",
           dir_ + "/server.key", "--tls-client-ca", ca,
           "--require-client-cert"});
  const Result mutual =
      with({"--tls-ca", ca, "--tls-cert", dir_ + "/client.pem", "--tls-key",
            dir_ + "/client.key"});
  EXPECT_EQ(mutual.exit_code, 0) << mutual;
  EXPECT_EQ(with({"--tls-ca", ca}).exit_code, 3);  // no client certificate
}

TEST_F(VoucherctlTest, FollowsTheLeaderAFollowerNames) {
  // A follower naming the real scheduler: the mutation is applied there,
  // with the request id the follower saw.
  FakeReplica follower;
  follower.Follow(endpoint_);
  const pb::RegisterProviderRequest provider = testing::WorldProviders()[0];
  const Result added =
      Run({"--endpoint", follower.address(), "--token", admin_token_, "admin",
           "provider", "add", "--name", provider.name(), "--credit-code",
           provider.credit_code(), "-o", "json"});
  ASSERT_EQ(added.exit_code, 0) << added;
  EXPECT_EQ(ParseJson<pb::Provider>(added.out).provider_id(), "PR-000001");
  EXPECT_EQ(added.err, "");
  EXPECT_EQ(follower.calls(), 1);
  ASSERT_EQ(follower.request_ids().size(), 1u);
  // The scheduler knows that id: it answers it with the first answer.
  const Result again =
      Admin({"admin", "provider", "add", "--name", provider.name(),
             "--credit-code", provider.credit_code(), "--request-id",
             follower.request_ids()[0], "-o", "json"});
  ASSERT_EQ(again.exit_code, 0) << again;
  EXPECT_EQ(ParseJson<pb::Provider>(again.out).provider_id(), "PR-000001");
  EXPECT_EQ(ParseJson<pb::ListProvidersResponse>(
                Admin({"admin", "provider", "list", "-o", "json"}).out)
                .providers_size(),
            1);

  // EnterpriseService too, through a chain of two followers, named in
  // VOUCHERCTL_ENDPOINT.
  FakeReplica leader;
  leader.Lead();
  FakeReplica second;
  second.Follow(leader.address());
  follower.Follow(second.address());
  const Result balance = Run({"balance", "-o", "json"},
                             {"VOUCHERCTL_ENDPOINT=" + follower.address(),
                              "VOUCHERCTL_TOKEN=cvt_any"});
  ASSERT_EQ(balance.exit_code, 0) << balance;
  EXPECT_EQ(ParseJson<pb::Balance>(balance.out).enterprise_id(), "E-FAKE");
  EXPECT_EQ(second.calls(), 1);
  EXPECT_EQ(leader.calls(), 1);
}

TEST_F(VoucherctlTest, TriesTheNextReplicaWhenOneIsDown) {
  FakeReplica follower;
  follower.Follow(endpoint_);
  const std::string dead = DeadAddress();
  // The first replica is down, the second follows the real scheduler.
  const Result listed =
      Run({"--endpoint", dead + "," + follower.address(), "--token",
           admin_token_, "admin", "program", "list", "-o", "json"});
  EXPECT_EQ(listed.exit_code, 0) << listed;
  EXPECT_EQ(listed.err, "");
  EXPECT_EQ(follower.calls(), 1);
  // A list with spaces, from the environment; the leader itself is listed.
  const Result direct = Run({"admin", "program", "list"},
                            {"VOUCHERCTL_ENDPOINT=" + dead + ", " + endpoint_,
                             "VOUCHERCTL_TOKEN=" + admin_token_});
  EXPECT_EQ(direct.exit_code, 0) << direct;
  EXPECT_EQ(follower.calls(), 1);
  // A saved list works like a typed one.
  ASSERT_EQ(Run({"login", "--endpoint", dead + "," + follower.address(),
                 "--token", admin_token_})
                .exit_code,
            0);
  const Result saved = Run({"admin", "program", "list"});
  EXPECT_EQ(saved.exit_code, 0) << saved;
  EXPECT_EQ(follower.calls(), 2);
}

TEST_F(VoucherctlTest, WaitsWhileNoReplicaLeadsAndRetriesWithTheSameRequestId) {
  // A takeover: the only replica knows no leader for three calls, then
  // names one.
  FakeReplica leader;
  leader.Lead();
  FakeReplica follower;
  follower.Follow(leader.address());
  follower.KnowNoLeaderFor(3);
  const Result added =
      Run({"--endpoint", follower.address(), "--token", admin_token_, "admin",
           "provider", "add", "--name", "n", "--credit-code",
           "91330100716105852F", "-o", "json"});
  ASSERT_EQ(added.exit_code, 0) << added;
  EXPECT_EQ(ParseJson<pb::Provider>(added.out).provider_id(), "PR-FAKE");
  EXPECT_THAT(added.err,
              HasSubstr("no scheduler replica leads at the moment; retrying "
                        "for up to 10s (--leader-wait)"));
  // Every try carried the id of the first: a mutation that committed just
  // before its leader died is not applied twice.
  const std::vector<std::string> tried = follower.request_ids();
  ASSERT_EQ(tried.size(), 4u);
  EXPECT_THAT(leader.request_ids(), ElementsAre(tried[0]));
  EXPECT_EQ(std::set<std::string>(tried.begin(), tried.end()).size(), 1u);
  EXPECT_THAT(tried[0], StartsWith("vctl-"));
}

TEST_F(VoucherctlTest, FollowsALeaderThatAppearsWhereNothingListened) {
  // Two replicas: one knows no leader, the other is down and comes back as
  // the leader while voucherctl waits.
  FakeReplica follower;
  const std::string dead = DeadAddress();
  const int dead_port = std::stoi(dead.substr(dead.find(':') + 1));
  Result listed;
  std::thread run([&] {
    listed = Run({"--endpoint", follower.address() + "," + dead, "--token",
                  admin_token_, "--leader-wait", "30s", "admin", "program",
                  "list", "-o", "json"});
  });
  ASSERT_TRUE(testing::PollUntil([&] { return follower.calls() >= 2; }));
  FakeReplica leader(dead_port);
  leader.Lead();
  run.join();
  EXPECT_EQ(listed.exit_code, 0) << listed;
  const auto programs = ParseJson<pb::ListProgramsResponse>(listed.out);
  ASSERT_EQ(programs.programs_size(), 1);
  EXPECT_EQ(programs.programs(0).program_id(), "P-FAKE");
  EXPECT_GE(leader.calls(), 1);
}

TEST_F(VoucherctlTest, GivesUpAfterLeaderWaitWithTheExitCodeOfWhoFailed) {
  const std::vector<std::string> list = {"admin", "program", "list"};
  const auto run = [&](const std::string& endpoint,
                       const std::string& leader_wait) {
    std::vector<std::string> args = {"--endpoint",    endpoint,
                                     "--token",       admin_token_,
                                     "--leader-wait", leader_wait};
    args.insert(args.end(), list.begin(), list.end());
    return Run(args);
  };
  // Nothing answers anywhere: unreachable, once the wait is over.
  const std::string dead1 = DeadAddress(), dead2 = DeadAddress();
  absl::Time start = absl::Now();
  const Result down = run(dead1 + "," + dead2, "1s");
  EXPECT_GE(absl::Now() - start, absl::Seconds(1));
  EXPECT_EQ(down.exit_code, 3) << down;
  EXPECT_THAT(down.err, AllOf(HasSubstr(absl::StrCat(
                                  "cannot reach the scheduler at any of ",
                                  dead1, ", ", dead2,
                                  " (from --endpoint) within --leader-wait 1s: "
                                  "unavailable: ")),
                              HasSubstr("point --endpoint at it")));
  // A single address where nothing listens fails at once.
  start = absl::Now();
  EXPECT_EQ(run(dead1, "30s").exit_code, 3);
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));

  // A replica answers, but no leader appears: refused.
  FakeReplica follower;
  follower.Follow("");
  start = absl::Now();
  const Result leaderless = run(dead1 + "," + follower.address(), "1s");
  EXPECT_GE(absl::Now() - start, absl::Seconds(1));
  EXPECT_EQ(leaderless.exit_code, 1) << leaderless;
  EXPECT_THAT(
      leaderless.err,
      AllOf(HasSubstr("voucherctl: unavailable: not the leader: this replica "
                      "follows; no leader is known yet (answered by " +
                      follower.address() + ")"),
            HasSubstr(absl::StrCat("No replica of ", dead1, ", ",
                                   follower.address(),
                                   " led within --leader-wait 1s."))));
  EXPECT_GE(follower.calls(), 3);  // retried while waiting

  // Two replicas that name each other: a bounded number of hops, then,
  // with --leader-wait 0s, no retry.
  FakeReplica a, b;
  a.Follow(b.address());
  b.Follow(a.address());
  const Result looping = run(a.address(), "0s");
  EXPECT_EQ(looping.exit_code, 1) << looping;
  EXPECT_THAT(looping.err, HasSubstr("not the leader"));
  EXPECT_EQ(a.calls() + b.calls(), 4);  // the first try and three hops
  EXPECT_THAT(looping.err, Not(HasSubstr("retrying")));
}

}  // namespace
}  // namespace computevoucher
