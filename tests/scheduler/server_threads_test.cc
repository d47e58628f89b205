// The scheduler's gRPC threads: a thread that has answered a call waits for
// the next instead of ending (SetServerThreads).
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "computevoucher/v1/agent.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "scheduler/server.h"

namespace computevoucher::scheduler {
namespace {

constexpr int kCalls = 32;

// Answers Heartbeat once kCalls calls are in at once, noting the thread
// that answered each.
class GatedService final : public pb::AgentService::Service {
 public:
  grpc::Status Heartbeat(grpc::ServerContext*, const pb::HeartbeatRequest*,
                         pb::HeartbeatResponse*) override {
    absl::MutexLock lock(&mu_);
    tids_.insert(static_cast<int>(syscall(SYS_gettid)));
    ++in_;
    auto all_in = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return in_ % kCalls == 0;
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&all_in), absl::Seconds(20))) {
      return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                          "the other calls did not come");
    }
    return grpc::Status::OK;
  }

  // The threads that answered since the last call of this.
  std::set<int> TakeThreads() {
    absl::MutexLock lock(&mu_);
    return std::exchange(tids_, {});
  }

 private:
  absl::Mutex mu_;
  int in_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<int> tids_ ABSL_GUARDED_BY(mu_);
};

// kCalls Heartbeat calls at once; fails the test (fatally) unless all come
// back OK.
void CallAtOnce(pb::AgentService::Stub& stub) {
  std::vector<std::thread> callers;
  std::vector<grpc::Status> statuses(kCalls);
  for (int i = 0; i < kCalls; ++i) {
    callers.emplace_back([&stub, &statuses, i] {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() +
                           std::chrono::seconds(30));
      pb::HeartbeatResponse response;
      statuses[i] = stub.Heartbeat(&context, {}, &response);
    });
  }
  for (std::thread& t : callers) t.join();
  for (const grpc::Status& s : statuses) {
    ASSERT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
  }
}

TEST(ServerThreads, ThreadsThatAnsweredCallsAnswerTheNextOnes) {
  GatedService service;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  SetServerThreads(builder);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  std::unique_ptr<pb::AgentService::Stub> stub = pb::AgentService::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                          grpc::InsecureChannelCredentials()));

  ASSERT_NO_FATAL_FAILURE(CallAtOnce(*stub));
  const std::set<int> first = service.TakeThreads();
  ASSERT_EQ(first.size(), static_cast<size_t>(kCalls));
  ASSERT_NO_FATAL_FAILURE(CallAtOnce(*stub));
  const std::set<int> second = service.TakeThreads();
  ASSERT_EQ(second.size(), static_cast<size_t>(kCalls));

  // With gRPC's default all but 2 of the first threads end, and the
  // second calls start new ones (31 of 32 new). Here the first
  // threads answer again: new ones are the thread that was waiting for calls
  // besides them, and any started because a second call came before the
  // first threads were back waiting (a slow machine).
  int started = 0;
  for (const int tid : second) started += first.count(tid) == 0 ? 1 : 0;
  EXPECT_LE(started, kCalls / 2)
      << "threads that answered the first calls: " << first.size()
      << ", the second: " << second.size();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
}

}  // namespace
}  // namespace computevoucher::scheduler
