// Runs the real voucher-scheduler binary as an operator would: first start,
// admin token file, a textproto config, TLS and mutual TLS, graceful stop on
// SIGTERM, a restart from the same data directory, and `verify`.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/config.h"
#include "common/leader.h"
#include "common/time_util.h"
#include "computevoucher/v1/admin.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "tests/scheduler/store/store_backend.h"
#include "tests/testing/binaries.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/world.h"
#include "tests/testing/world_api.h"

namespace computevoucher {
namespace {

using ::computevoucher::testing::MakeTempDir;
using ::computevoucher::testing::TempDir;

namespace pb = ::computevoucher::v1;
using ::testing::HasSubstr;

std::string Binary() {
  return testing::BuildDir() + "/scheduler/voucher-scheduler";
}

using testing::Shell;

// Threads that issue small vouchers until the scheduler stops answering,
// and the answers they were given.
class IssueLoad {
 public:
  IssueLoad(pb::AdminService::Stub& admin, std::string token)
      : admin_(admin), token_(std::move(token)) {}
  ~IssueLoad() { StopAndJoin(); }

  void Start(int threads) {
    for (int t = 0; t < threads; ++t) {
      threads_.emplace_back([this, t] { IssueUntilStopped(t); });
    }
  }

  // Calls begun well after now must not be served.
  void Signalled() { signalled_ms_ = absl::ToUnixMillis(absl::Now()); }

  void StopAndJoin() {
    stop_ = true;
    for (std::thread& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
  }

  std::atomic<int64_t> ok{0};
  std::atomic<int64_t> refused{0};
  std::atomic<int64_t> cancelled{0};
  std::atomic<int64_t> other{0};
  // Calls begun well after the signal that were still served.
  std::atomic<int64_t> served_late{0};
  absl::Mutex others_mu;
  std::vector<std::string> others ABSL_GUARDED_BY(others_mu);

 private:
  void IssueUntilStopped(int t) {
    for (int i = 0; !stop_.load(); ++i) {
      pb::IssueVoucherRequest r;
      r.set_request_id(absl::StrCat("load-", t, "-", i));
      r.set_program_id("P-000001");
      r.set_enterprise_id("E-000001");
      r.set_face_value_fen(100);
      grpc::ClientContext c;
      c.AddMetadata("authorization", "Bearer " + token_);
      c.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
      pb::Voucher v;
      const int64_t begun_ms = absl::ToUnixMillis(absl::Now());
      const grpc::Status s = admin_.IssueVoucher(&c, r, &v);
      if (s.ok()) {
        ++ok;
        const int64_t signalled = signalled_ms_.load();
        if (signalled != std::numeric_limits<int64_t>::max() &&
            begun_ms > signalled + 300) {
          ++served_late;
        }
      } else if (s.error_code() == grpc::StatusCode::CANCELLED) {
        // gRPC's answer to a call that reached the transport as it
        // closed; checked by the test to have done nothing.
        ++cancelled;
      } else if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
        // Refused, or nobody listens any more: nothing was done.
        ++refused;
        if (absl::StrContains(s.error_message(), "connect")) return;
      } else {
        ++other;
        absl::MutexLock lock(&others_mu);
        others.push_back(absl::StrCat(s.error_code(), ": ", s.error_message()));
      }
    }
  }

  pb::AdminService::Stub& admin_;
  const std::string token_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> signalled_ms_{std::numeric_limits<int64_t>::max()};
  std::vector<std::thread> threads_;
};

class SchedulerBinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(MakeTempDir("e2e", temp_));
    dir_ = temp_.path();
  }
  void TearDown() override { scheduler_.reset(); }

  // Starts the binary with `args`; returns the port it listens on.
  int Start(std::vector<std::string> args) {
    const std::string port_file = dir_ + "/port";
    std::filesystem::remove(port_file);
    args.insert(args.begin(), Binary());
    args.push_back("--port-file=" + port_file);
    scheduler_ = std::make_unique<testing::ChildProcess>(
        std::move(args), dir_ + "/scheduler.log");
    return testing::WaitForPortFile(*scheduler_, port_file);
  }

  // Sends `signal` and returns the exit code.
  int Stop(int signal = SIGTERM) { return scheduler_->Stop(signal); }

  std::string Log() { return scheduler_->Log(); }

  std::string AdminToken() {
    absl::StatusOr<std::string> token = ReadFile(dir_ + "/data/admin.token");
    EXPECT_TRUE(token.ok()) << token.status();
    return token.ok() ? std::string(absl::StripAsciiWhitespace(*token)) : "";
  }

  static grpc::Status ListPrograms(
      const std::shared_ptr<grpc::Channel>& channel, const std::string& token) {
    auto stub = pb::AdminService::NewStub(channel);
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + token);
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
    pb::ListProgramsRequest r;
    pb::ListProgramsResponse out;
    return stub->ListPrograms(&context, r, &out);
  }

  // Creates the test world through the API of the scheduler on `admin`.
  static void CreateWorld(pb::AdminService::Stub& admin,
                          const std::string& token) {
    int setup_requests = 0;
    pb::CreateProgramRequest program = testing::WorldProgram();
    *program.mutable_valid_from() = ToProto(absl::Now() - absl::Hours(24));
    *program.mutable_valid_until() =
        ToProto(absl::Now() + absl::Hours(24 * 300));
    ASSERT_TRUE(testing::CreateWorldThroughApi(
                    admin, token,
                    [&] { return absl::StrCat("setup-", ++setup_requests); },
                    program)
                    .ok());
  }

  // Sets `stored` to the number of vouchers the scheduler on `port` lists.
  static void CountVouchers(int port, const std::string& token,
                            int64_t& stored) {
    auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                       grpc::InsecureChannelCredentials());
    auto admin = pb::AdminService::NewStub(channel);
    stored = 0;
    pb::AdminListVouchersRequest list;
    list.mutable_page()->set_page_size(1000);
    while (true) {
      grpc::ClientContext c;
      c.AddMetadata("authorization", "Bearer " + token);
      pb::AdminListVouchersResponse page;
      const grpc::Status s = admin->ListVouchers(&c, list, &page);
      ASSERT_TRUE(s.ok()) << s.error_message();
      stored += page.vouchers_size();
      if (page.next_page_token().empty()) break;
      list.mutable_page()->set_page_token(page.next_page_token());
    }
  }

  TempDir temp_;  // destroyed after the members declared below
  std::string dir_;
  std::unique_ptr<testing::ChildProcess> scheduler_;
};

TEST_F(SchedulerBinaryTest, FirstStartServesStopsOnSigtermAndVerifies) {
  // A textproto config, with a flag overriding one of its settings.
  std::ofstream(dir_ + "/scheduler.textproto")
      << "listen_address: \"127.0.0.1:1\"\n"
      << "data_dir: \"" << dir_ << "/data\"\n"
      << "usage_grace_s: 120\n";
  const int port = Start(
      {"--config=" + dir_ + "/scheduler.textproto", "--listen=127.0.0.1:0"});
  ASSERT_GT(port, 0);
  // The port file comes first; the line about the token follows it.
  const std::string written =
      "first admin token written to " + dir_ + "/data/admin.token";
  EXPECT_TRUE(testing::PollUntil([&] {
    return Log().find(written) != std::string::npos;
  })) << Log();
  struct stat st;
  ASSERT_EQ(stat((dir_ + "/data/admin.token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);

  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                     grpc::InsecureChannelCredentials());
  const std::string token = AdminToken();
  EXPECT_TRUE(ListPrograms(channel, token).ok());
  EXPECT_EQ(ListPrograms(channel, "cvt_wrong").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Stop(SIGTERM), 0);
  EXPECT_THAT(Log(), HasSubstr("stopped"));
  // A planned stop leaves a snapshot of its last command...
  EXPECT_THAT(Log(), HasSubstr(" stored at stop: "));

  // A second start keeps the data and writes no new token...
  const int again =
      Start({"--data-dir=" + dir_ + "/data", "--listen=127.0.0.1:0"});
  ASSERT_GT(again, 0);
  // ...and loads that snapshot with nothing after it to replay.
  EXPECT_TRUE(testing::PollUntil([&] {
    return Log().find("then 0 commands replayed") != std::string::npos;
  })) << Log();
  auto channel2 = grpc::CreateChannel(absl::StrCat("127.0.0.1:", again),
                                      grpc::InsecureChannelCredentials());
  EXPECT_TRUE(ListPrograms(channel2, token).ok());
  EXPECT_EQ(Stop(SIGINT), 0);
  EXPECT_EQ(Shell(Binary() + " verify --data-dir " + dir_ + "/data > " + dir_ +
                  "/verify.out"),
            0);
  absl::StatusOr<std::string> verify = ReadFile(dir_ + "/verify.out");
  ASSERT_TRUE(verify.ok());
  EXPECT_THAT(*verify, HasSubstr("OK: every invariant holds"));
}

TEST_F(SchedulerBinaryTest, SigtermFinishesCallsInProgressAndRefusesNewOnes) {
  const std::string data = "--data-dir=" + dir_ + "/data";
  const int port = Start({data, "--listen=127.0.0.1:0"});
  ASSERT_GT(port, 0);
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                     grpc::InsecureChannelCredentials());
  auto admin = pb::AdminService::NewStub(channel);
  const std::string token = AdminToken();
  ASSERT_NO_FATAL_FAILURE(CreateWorld(*admin, token));

  // 16 threads issue small vouchers until the scheduler stops answering;
  // SIGTERM comes while they run.
  constexpr int kThreads = 16;
  IssueLoad load(*admin, token);
  load.Start(kThreads);
  ASSERT_TRUE(testing::PollUntil([&] { return load.ok.load() > 200; }));
  load.Signalled();
  EXPECT_EQ(Stop(SIGTERM), 0) << Log();
  load.StopAndJoin();
  {
    absl::MutexLock lock(&load.others_mu);
    EXPECT_EQ(load.other.load(), 0) << absl::StrJoin(load.others, "\n");
  }
  EXPECT_EQ(load.served_late.load(), 0)
      << "new calls were served after SIGTERM";

  // Every voucher answered OK is stored, and nothing answered otherwise
  // was: the count of vouchers in the store is the count of OK answers.
  const int again = Start({data, "--listen=127.0.0.1:0"});
  ASSERT_GT(again, 0);
  int64_t stored = 0;
  ASSERT_NO_FATAL_FAILURE(CountVouchers(again, token, stored));
  EXPECT_EQ(stored, load.ok.load()) << load.refused.load() << " refused, "
                                    << load.cancelled.load() << " cancelled";
  EXPECT_EQ(Stop(SIGTERM), 0);
}

TEST_F(SchedulerBinaryTest, ASecondSchedulerOnTheSamePortIsRefused) {
  const int port =
      Start({"--data-dir=" + dir_ + "/data", "--listen=127.0.0.1:0"});
  ASSERT_GT(port, 0);
  // Another scheduler, with a data directory of its own, on that port.
  testing::ChildProcess second({Binary(), "--data-dir=" + dir_ + "/other",
                                absl::StrCat("--listen=127.0.0.1:", port)},
                               dir_ + "/second.log");
  const std::optional<int> code = second.Wait(absl::Seconds(20));
  ASSERT_TRUE(code.has_value())
      << "the second scheduler started on port " << port << ":\n"
      << second.Log();
  EXPECT_NE(*code, 0);
  EXPECT_THAT(second.Log(),
              HasSubstr(absl::StrCat("listen_address: cannot listen on "
                                     "127.0.0.1:",
                                     port)));
  // The first one still serves.
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                     grpc::InsecureChannelCredentials());
  EXPECT_TRUE(ListPrograms(channel, AdminToken()).ok());
  EXPECT_EQ(Stop(SIGTERM), 0);
}

TEST_F(SchedulerBinaryTest, PostgresStoreServesRestartsAndVerifies) {
  absl::StatusOr<std::unique_ptr<store::StoreBackend>> database =
      store::MakeStoreBackend("postgres", dir_);
  if (database.status().code() == absl::StatusCode::kFailedPrecondition) {
    GTEST_SKIP() << database.status().message();
  }
  ASSERT_TRUE(database.ok()) << database.status();
  const std::string store = "--store=" + (*database)->store_url();
  // The data directory holds only the admin token; the binary creates it.
  const int port =
      Start({store, "--data-dir=" + dir_ + "/token", "--listen=127.0.0.1:0"});
  ASSERT_GT(port, 0);
  EXPECT_TRUE(testing::PollUntil([&] {
    return Log().find("first admin token written") != std::string::npos;
  })) << Log();
  const absl::StatusOr<std::string> token_file =
      ReadFile(dir_ + "/token/admin.token");
  ASSERT_TRUE(token_file.ok()) << token_file.status();
  const std::string token(absl::StripTrailingAsciiWhitespace(*token_file));
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                     grpc::InsecureChannelCredentials());
  EXPECT_TRUE(ListPrograms(channel, token).ok());
  // A second scheduler on the same database follows: it refuses calls,
  // naming the leader, and says NOT_SERVING.
  testing::ChildProcess second(
      {Binary(), store, "--data-dir=" + dir_ + "/second",
       "--listen=127.0.0.1:0", "--port-file=" + dir_ + "/second.port"},
      dir_ + "/second.log");
  const int second_port =
      testing::WaitForPortFile(second, dir_ + "/second.port");
  ASSERT_GT(second_port, 0);
  auto follower = grpc::CreateChannel(absl::StrCat("127.0.0.1:", second_port),
                                      grpc::InsecureChannelCredentials());
  {
    auto stub = pb::AdminService::NewStub(follower);
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + token);
    pb::ListProgramsResponse out;
    const grpc::Status refused =
        stub->ListPrograms(&context, pb::ListProgramsRequest(), &out);
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_THAT(refused.error_message(), HasSubstr("not the leader"));
    EXPECT_EQ(LeaderHint(context), absl::StrCat("127.0.0.1:", port));
  }
  EXPECT_EQ(testing::HealthStatus(absl::StrCat("127.0.0.1:", second_port)),
            "NOT_SERVING");
  EXPECT_EQ(testing::HealthStatus(absl::StrCat("127.0.0.1:", port)), "SERVING");
  // The leader's graceful stop gives the lease up: the follower takes over
  // without waiting for it to expire, with the state and token as they were.
  const absl::Time stopped = absl::Now();
  EXPECT_EQ(Stop(SIGTERM), 0);
  EXPECT_TRUE(testing::PollUntil(
      [&] { return ListPrograms(follower, token).ok(); }, absl::Seconds(10)))
      << second.Log();
  EXPECT_LT(absl::Now() - stopped, absl::Seconds(5));  // the lease is 5 s
  EXPECT_EQ(testing::HealthStatus(absl::StrCat("127.0.0.1:", second_port)),
            "SERVING");
  EXPECT_EQ(second.Stop(SIGTERM), 0);

  // A restart keeps the state: the same token works.
  const int again =
      Start({store, "--data-dir=" + dir_ + "/token", "--listen=127.0.0.1:0"});
  ASSERT_GT(again, 0);
  auto channel2 = grpc::CreateChannel(absl::StrCat("127.0.0.1:", again),
                                      grpc::InsecureChannelCredentials());
  EXPECT_TRUE(ListPrograms(channel2, token).ok());
  // verify reads beside the running scheduler.
  EXPECT_EQ(
      Shell(Binary() + " verify " + store + " > " + dir_ + "/verify.out 2>&1"),
      0);
  EXPECT_EQ(Stop(SIGTERM), 0);
  const absl::StatusOr<std::string> verify = ReadFile(dir_ + "/verify.out");
  ASSERT_TRUE(verify.ok());
  EXPECT_THAT(*verify, HasSubstr("OK: every invariant holds"));
}

// `archive` through the binary: refused beside a running scheduler, for a
// period not yet closed and for bad arguments, each saying why; a date
// before anything was applied archives nothing.
TEST_F(SchedulerBinaryTest, ArchiveRefusesOpenPeriodsAndARunningScheduler) {
  const std::string data = dir_ + "/data";
  ASSERT_GT(Start({"--data-dir=" + data, "--listen=127.0.0.1:0"}), 0);
  const std::string out = dir_ + "/archive.out";
  auto archive = [&](const std::string& args) {
    return Shell(Binary() + " archive --data-dir " + data + " " + args + " > " +
                 out + " 2>&1");
  };
  auto said = [&] { return ReadFile(out).value_or(""); };
  EXPECT_EQ(archive("--before 2020-01-01 --to " + dir_ + "/archives"), 2);
  EXPECT_THAT(said(), HasSubstr("in use"));
  EXPECT_EQ(Stop(SIGTERM), 0);

  const std::string today =
      absl::FormatTime("%Y-%m-%d", absl::Now(), computevoucher::ShanghaiZone());
  EXPECT_EQ(archive("--before " + today + " --to " + dir_ + "/archives"), 2);
  EXPECT_THAT(said(), HasSubstr("less than 31 days ago"));
  EXPECT_EQ(archive("--before 2020-13-01 --to " + dir_ + "/archives"), 2);
  EXPECT_THAT(said(), HasSubstr("--before"));
  EXPECT_EQ(archive("--before 2020-01-01"), 2);
  EXPECT_THAT(said(), HasSubstr("--to"));
  EXPECT_EQ(archive("--before 2020-01-01 --to " + dir_ + "/archives"), 0);
  EXPECT_THAT(said(), HasSubstr("nothing to archive"));
  // Nothing archived: verify needs no archive.
  EXPECT_EQ(Shell(Binary() + " verify --data-dir " + data + " > " + out), 0);
  EXPECT_THAT(said(), HasSubstr("OK: every invariant holds"));
}

TEST_F(SchedulerBinaryTest, BadFlagsAreUsageErrors) {
  EXPECT_EQ(Shell(Binary() + " serve > /dev/null 2>&1"), 2);  // no data dir
  EXPECT_EQ(
      Shell(Binary() + " frobnicate --data-dir " + dir_ + " > /dev/null 2>&1"),
      2);
  EXPECT_EQ(Shell(Binary() + " --data-dir " + dir_ +
                  " --tick-interval-ms 1 > /dev/null 2>&1"),
            2);
  EXPECT_EQ(Shell(Binary() + " verify --data-dir " + dir_ +
                  "/missing > /dev/null 2>&1"),
            2);
}

TEST_F(SchedulerBinaryTest, ServesTlsAndMutualTls) {
  // A CA, a server certificate for 127.0.0.1 and a client certificate.
  const std::string d = dir_;
  ASSERT_TRUE(testing::MakeTestCertificates(d));
  auto read = [&](const std::string& name) {
    return ReadFile(d + "/" + name).value_or("");
  };
  grpc::SslCredentialsOptions server_only;
  server_only.pem_root_certs = read("ca.pem");
  grpc::SslCredentialsOptions with_client = server_only;
  with_client.pem_private_key = read("client.key");
  with_client.pem_cert_chain = read("client.pem");

  int port = Start({"--data-dir=" + d + "/data", "--listen=127.0.0.1:0",
                    "--tls-cert=" + d + "/server.pem",
                    "--tls-key=" + d + "/server.key"});
  ASSERT_GT(port, 0);
  const std::string token = AdminToken();
  const std::string address = absl::StrCat("127.0.0.1:", port);
  EXPECT_TRUE(ListPrograms(grpc::CreateChannel(
                               address, grpc::SslCredentials(server_only)),
                           token)
                  .ok());
  EXPECT_EQ(ListPrograms(grpc::CreateChannel(
                             address, grpc::InsecureChannelCredentials()),
                         token)
                .error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Stop(), 0);

  port = Start({"--data-dir=" + d + "/data", "--listen=127.0.0.1:0",
                "--tls-cert=" + d + "/server.pem",
                "--tls-key=" + d + "/server.key",
                "--tls-client-ca=" + d + "/ca.pem", "--require-client-cert"});
  ASSERT_GT(port, 0);
  const std::string mtls = absl::StrCat("127.0.0.1:", port);
  EXPECT_TRUE(
      ListPrograms(grpc::CreateChannel(mtls, grpc::SslCredentials(with_client)),
                   token)
          .ok());
  EXPECT_EQ(
      ListPrograms(grpc::CreateChannel(mtls, grpc::SslCredentials(server_only)),
                   token)
          .error_code(),
      grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Stop(), 0);
}

}  // namespace
}  // namespace computevoucher
