#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "agent/spool.h"
#include "common/time_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace computevoucher::agent {
namespace {

using ::computevoucher::testing::MakeTempDir;
using ::computevoucher::testing::TempDir;

using ::computevoucher::testing::IsOk;
using ::computevoucher::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

absl::Time T(int64_t s) { return absl::FromUnixSeconds(1'750'000'000 + s); }

pb::UsageRecord Record(const std::string& allocation_id, int64_t sequence,
                       int64_t start_s, int64_t end_s) {
  pb::UsageRecord r;
  r.set_allocation_id(allocation_id);
  r.set_sequence(sequence);
  *r.mutable_start() = ToProto(T(start_s));
  *r.mutable_end() = ToProto(T(end_s));
  r.set_gpu_ms(1000 * (end_s - start_s));
  r.set_mean_utilization_bp(5000);
  r.set_energy_mj(42);
  return r;
}

// (allocation, sequence) of each record, for compact assertions.
std::vector<std::pair<std::string, int64_t>> Keys(
    const std::vector<pb::UsageRecord>& records) {
  std::vector<std::pair<std::string, int64_t>> keys;
  for (const pb::UsageRecord& r : records) {
    keys.emplace_back(r.allocation_id(), r.sequence());
  }
  return keys;
}

class SpoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(MakeTempDir("spool_test", temp_));
    root_ = temp_.path();
    dir_ = root_ + "/spool";
  }

  absl::StatusOr<std::unique_ptr<Spool>> OpenSpool(int64_t max_bytes = 256
                                                                       << 20) {
    Spool::Options options;
    options.dir = dir_;
    options.max_bytes = max_bytes;
    return Spool::Open(options);
  }

  std::string LogPath() const { return dir_ + "/spool.log"; }

  int64_t LogSize() const {
    return static_cast<int64_t>(std::filesystem::file_size(LogPath()));
  }

  std::string ReadLog() const {
    std::ifstream in(LogPath(), std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  void WriteLog(const std::string& data) const {
    std::ofstream out(LogPath(), std::ios::binary | std::ios::trunc);
    out << data;
  }

  TempDir temp_;  // destroyed after the members declared below
  std::string root_;
  std::string dir_;
};

TEST_F(SpoolTest, OpenRejectsBadOptions) {
  Spool::Options options;
  EXPECT_THAT(Spool::Open(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dir")));
  options.dir = dir_;
  options.max_bytes = 0;
  EXPECT_THAT(Spool::Open(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("max_bytes: must be positive, got 0")));
}

TEST_F(SpoolTest, OpenCreatesPrivateDirectory) {
  dir_ = root_ + "/a/b/spool";
  ASSERT_OK_AND_ASSIGN(auto spool, OpenSpool());
  struct stat st;
  ASSERT_EQ(::stat(dir_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(LogSize(), 0);
  EXPECT_EQ(spool->depth(), 0);
  EXPECT_EQ(spool->live_bytes(), 0);
  EXPECT_EQ(spool->oldest_pending_end(), std::nullopt);
  EXPECT_TRUE(spool->Allocations().empty());
}

TEST_F(SpoolTest, AppendSurvivesReopen) {
  {
    ASSERT_OK_AND_ASSIGN(auto spool, OpenSpool());
    ASSERT_THAT(spool->Append({Record("alloc-a", 1, 0, 60),
                               Record("alloc-b", 1, 10, 70)}),
                IsOk());
    ASSERT_THAT(spool->Append({Record("alloc-a", 2, 60, 120)}), IsOk());
  }
  ASSERT_OK_AND_ASSIGN(auto spool, OpenSpool());
  const std::vector<pb::UsageRecord> pending = spool->Pending(10);
  EXPECT_THAT(Keys(pending), ElementsAre(Pair("alloc-a", 1), Pair("alloc-b", 1),
                                         Pair("alloc-a", 2)));
  ASSERT_EQ(pending.size(), 3u);
  EXPECT_EQ(pending[1].gpu_ms(), 60000);
  EXPECT_EQ(pending[1].energy_mj(), 42);
  EXPECT_EQ(pending[2].start().seconds(), absl::ToUnixSeconds(T(60)));
  EXPECT_THAT(spool->Allocations(), ElementsAre("alloc-a", "alloc-b"));
  const std::optional<Spool::Cursor> a = spool->CursorOf("alloc-a");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->next_sequence, 3);
  EXPECT_EQ(a->resume_at, T(120));
  const std::optional<Spool::Cursor> b = spool->CursorOf("alloc-b");
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->next_sequence, 2);
  EXPECT_EQ(b->resume_at, T(70));
  EXPECT_EQ(spool->CursorOf("alloc-c"), std::nullopt);
  EXPECT_EQ(spool->PendingOf("alloc-a"), 2);
  EXPECT_EQ(spool->PendingOf("alloc-b"), 1);
  EXPECT_EQ(spool->PendingOf("alloc-c"), 0);
  // Metering continues from the cursor after the restart.
  EXPECT_THAT(spool->Append({Record("alloc-a", 3, 120, 180)}), IsOk());
}

TEST_F(SpoolTest, AcknowledgeRemovesRecordsDurably) {
  {
    ASSERT_OK_AND_ASSIGN(auto spool, OpenSpool());
    ASSERT_THAT(spool->Append({Record("a", 1, 0, 60), Record("a", 2, 60, 120),
                               Record("b", 1, 0, 30)}),
                IsOk());
    ASSERT_THAT(spool->Acknowledge({{"a", 2}, {"a", 7}, {"zzz", 1}, {"a", 2}}),
                IsOk());
    EXPECT_EQ(spool->depth(), 2);
    EXPECT_EQ(spool->PendingOf("a"), 1);
  }
  ASSERT_OK_AND_ASSIGN(auto spool, OpenSpool());
  EXPECT_THAT(Keys(spool->Pending(10)),
              ElementsAre(Pair("a", 1), Pair("b", 1)));
  // The cursor stays past the acknowledged record.
  ASSERT_TRUE(spool->CursorOf("a").has_value());
  EXPECT_EQ(spool->CursorOf("a")->next_sequence, 3);
  EXPECT_EQ(spool->CursorOf("a")->resume_at, T(120));
  ASSERT_THAT(spool->Acknowledge({{"a", 1}, {"b", 1}}), IsOk());
  EXPECT_EQ(spool->depth(), 0);
}

TEST_F(SpoolTest, AppendRejectsRecordsThatDoNotContinueTheCursor) {
  struct Case {
    std::string name;
    std::vector<pb::UsageRecord> records;
    std::string message;
  };
  // The spool holds a:1 [0, 60) so a's cursor is (2, 60).
  const std::vector<Case> cases = {
      {"wrong sequence",
       {Record("a", 3, 60, 120)},
       "sequence: expected 2, got 3"},
      {"repeated sequence", {Record("a", 1, 60, 120)}, "expected 2, got 1"},
      {"new allocation not at 1", {Record("b", 2, 0, 60)}, "expected 1, got 2"},
      {"start before resume_at",
       {Record("a", 2, 59, 120)},
       "before the cursor"},
      {"end not after start", {Record("a", 2, 60, 60)}, "must be after start"},
      {"gap in one call",
       {Record("a", 2, 60, 120), Record("a", 4, 120, 180)},
       "expected 3, got 4"},
      {"overlap in one call",
       {Record("a", 2, 60, 120), Record("a", 3, 119, 180)},
       "before the cursor"},
      {"good record before a bad one",
       {Record("b", 1, 0, 60), Record("a", 2, 60, 120),
        Record("b", 3, 60, 120)},
       "allocation b: sequence: expected 2, got 3"},
      {"missing allocation", {Record("", 1, 0, 60)}, "allocation_id"},
  };
  {
    ASSERT_OK_AND_ASSIGN(auto spool, OpenSpool());
    ASSERT_THAT(spool->Append({Record("a", 1, 0, 60)}), IsOk());
    const int64_t size = LogSize();
    const int64_t live = spool->live_bytes();
    for (const Case& c : cases) {
      EXPECT_THAT(
          spool->Append(c.records),
          StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)))
          << c.name;
      EXPECT_EQ(LogSize(), size) << c.name;
      EXPECT_EQ(spool->live_bytes(), live) << c.name;
      EXPECT_EQ(spool->depth(), 1) << c.name;
      EXPECT_EQ(spool->CursorOf("b"), std::nullopt) << c.name;
      ASSERT_TRUE(spool->CursorOf("a").has_value());
      EXPECT_EQ(spool->CursorOf("a")->next_sequence, 2) << c.name;
    }
  }
  ASSERT_OK_AND_ASSIGN(auto spool, OpenSpool());
  EXPECT_THAT(Keys(spool->Pending(10)), ElementsAre(Pair("a", 1)));
  EXPECT_THAT(spool->Allocations(), ElementsAre("a"));
  // Records that continue each other in one call are fine, gaps in time
  // included (metering paused).
  EXPECT_THAT(spool->Append({Record("a", 2, 60, 120), Record("b", 1, 5, 65),
                             Record("a", 3, 130, 190)}),
              IsOk());
  EXPECT_EQ(spool->CursorOf("a")->next_sequence, 4);
  EXPECT_EQ(spool->CursorOf("a")->resume_at, T(190));
}

TEST_F(SpoolTest, SetCursorNeverMovesBack) {
  {
    ASSERT_OK_AND_ASSIGN(auto spool, OpenSpool());
    ASSERT_THAT(spool->SetCursor("a", {5, T(100)}), IsOk());
    ASSERT_THAT(spool->SetCursor("a", {3, T(200)}), IsOk());
    ASSERT_TRUE(spool->CursorOf("a").has_value());
    EXPECT_EQ(spool->CursorOf("a")->next_sequence, 5);
    EXPECT_EQ(spool->CursorOf("a")->resume_at, T(200));
    ASSERT_THAT(spool->SetCursor("a", {7, T(50)}), IsOk());
    EXPECT_EQ(spool->CursorOf("a")->next_sequence, 7);
    EXPECT_EQ(spool->CursorOf("a")->resume_at, T(200));
    // Already there: nothing to write.
    const int64_t size = LogSize();
    ASSERT_THAT(spool->SetCursor("a", {1, absl::InfinitePast()}), IsOk());
    EXPECT_EQ(LogSize(), size);
    // A cursor without a resume instant (metering has not begun).
    ASSERT_THAT(spool->SetCursor("b", Spool::Cursor{}), IsOk());
    EXPECT_THAT(spool->SetCursor("c", {0, T(0)}),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("next_sequence")));
    EXPECT_THAT(spool->SetCursor("c", {1, absl::InfiniteFuture()}),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("allocation c: resume_at")));
  }
  ASSERT_OK_AND_ASSIGN(auto spool, OpenSpool());
  EXPECT_THAT(spool->Allocations(), ElementsAre("a", "b"));
  EXPECT_EQ(spool->CursorOf("a")->next_sequence, 7);
  EXPECT_EQ(spool->CursorOf("a")->resume_at, T(200));
  EXPECT_EQ(spool->CursorOf("b")->next_sequence, 1);
  EXPECT_EQ(spool->CursorOf("b")->resume_at, absl::InfinitePast());
  EXPECT_THAT(spool->Append({Record("a", 7, 150, 260)}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(spool->Append({Record("a", 7, 200, 260)}), IsOk());
  EXPECT_THAT(spool->Append({Record("b", 1, 0, 10)}), IsOk());
}

TEST_F(SpoolTest, CursorKeepsTheGpuCountThroughAppendsAcksAndReopen) {
  {
    ASSERT_OK_AND_ASSIGN(auto spool, OpenSpool());
    ASSERT_THAT(spool->SetCursor("a", {1, T(0), 4}), IsOk());
    ASSERT_THAT(spool->Append({Record("a", 1, 0, 60)}), IsOk());
    EXPECT_EQ(spool->CursorOf("a")->gpu_count, 4);
    ASSERT_THAT(spool->Acknowledge({{"a", 1}}), IsOk());
  }
  ASSERT_OK_AND_ASSIGN(auto spool, OpenSpool());  // compacts on open
  ASSERT_TRUE(spool->CursorOf("a").has_value());
  EXPECT_EQ(spool->CursorOf("a")->gpu_count, 4);
  EXPECT_EQ(spool->CursorOf("a")->next_sequence, 2);
  EXPECT_EQ(spool->CursorOf("a")->resume_at, T(60));
}

TEST_F(SpoolTest, OneSpoolOneAgent) {
  ASSERT_OK_AND_ASSIGN(auto spool, OpenSpool());
  EXPECT_THAT(OpenSpool(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                    HasSubstr("in use by another")));
  spool.reset();
  EXPECT_THAT(OpenSpool(), IsOk());
}

TEST_F(SpoolTest, ForgetIsRefusedWhileRecordsArePending) {
  {
    ASSERT_OK_AND_ASSIGN(auto spool, OpenSpool());
    ASSERT_THAT(spool->Append({Record("a", 1, 0, 60), Record("b", 1, 0, 60)}),
                IsOk());
    EXPECT_THAT(spool->Forget("a"),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         HasSubstr("allocation a: 1 records still pending")));
    EXPECT_TRUE(spool->CursorOf("a").has_value());
    ASSERT_THAT(spool->Acknowledge({{"a", 1}}), IsOk());
    ASSERT_THAT(spool->Forget("a"), IsOk());
    EXPECT_EQ(spool->CursorOf("a"), std::nullopt);
    EXPECT_THAT(spool->Allocations(), ElementsAre("b"));
    EXPECT_THAT(spool->Forget("never-seen"), IsOk());
  }
  ASSERT_OK_AND_ASSIGN(auto spool, OpenSpool());
  EXPECT_EQ(spool->CursorOf("a"), std::nullopt);
  EXPECT_THAT(spool->Allocations(), ElementsAre("b"));
  EXPECT_THAT(Keys(spool->Pending(10)), ElementsAre(Pair("b", 1)));
}

TEST_F(SpoolTest, FullSpoolIsResourceExhaustedAndChangesNothing) {
  constexpr int64_t kMaxBytes = 400;
  ASSERT_OK_AND_ASSIGN(auto spool, OpenSpool(kMaxBytes));
  int64_t sequence = 1;
  absl::Status status;
  for (; sequence < 100; ++sequence) {
    status = spool->Append(
        {Record("a", sequence, 60 * (sequence - 1), 60 * sequence)});
    if (!status.ok()) break;
  }
  ASSERT_LT(sequence, 100) << "the spool never filled";
  EXPECT_GT(sequence, 3);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kResourceExhausted,
                               HasSubstr("spool full: ")));
  EXPECT_THAT(std::string(status.message()), HasSubstr("max_bytes 400"));
  EXPECT_THAT(std::string(status.message()),
              HasSubstr(absl::StrCat(spool->live_bytes(), " live bytes")));
  EXPECT_THAT(std::string(status.message()), HasSubstr("--spool-max-bytes"));
  EXPECT_LE(spool->live_bytes(), kMaxBytes);
  const int64_t size = LogSize();
  const int64_t depth = spool->depth();
  EXPECT_EQ(depth, sequence - 1);
  EXPECT_THAT(spool->Append(
                  {Record("a", sequence, 60 * (sequence - 1), 60 * sequence)}),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_EQ(LogSize(), size);
  EXPECT_EQ(spool->depth(), depth);
  EXPECT_EQ(spool->CursorOf("a")->next_sequence, sequence);

  ASSERT_THAT(spool->Acknowledge({{"a", 1}}), IsOk());
  EXPECT_THAT(spool->Append(
                  {Record("a", sequence, 60 * (sequence - 1), 60 * sequence)}),
              IsOk());
  EXPECT_EQ(spool->depth(), depth);
  EXPECT_LE(spool->live_bytes(), kMaxBytes);
}

TEST_F(SpoolTest, FailedWriteLeavesNoPartOfTheAppend) {
  ASSERT_OK_AND_ASSIGN(auto spool, OpenSpool());
  ASSERT_THAT(spool->Append({Record("a", 1, 0, 60)}), IsOk());
  const int64_t size = LogSize();
  const int64_t live = spool->live_bytes();
  // A file size limit a little past the end makes the next write stop
  // partway (EFBIG instead of SIGXFSZ).
  struct rlimit old_limit;
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  void (*old_handler)(int) = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit limit = old_limit;
  limit.rlim_cur = static_cast<rlim_t>(size + 30);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limit), 0);
  const absl::Status status =
      spool->Append({Record("a", 2, 60, 120), Record("a", 3, 120, 180),
                     Record("a", 4, 180, 240)});
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &old_limit), 0);
  ::signal(SIGXFSZ, old_handler);

  EXPECT_THAT(status,
              StatusIs(absl::StatusCode::kInternal, HasSubstr(LogPath())));
  EXPECT_EQ(LogSize(), size);
  EXPECT_EQ(spool->depth(), 1);
  EXPECT_EQ(spool->live_bytes(), live);
  EXPECT_EQ(spool->CursorOf("a")->next_sequence, 2);
  ASSERT_THAT(spool->Append({Record("a", 2, 60, 120)}), IsOk());
  spool.reset();
  ASSERT_OK_AND_ASSIGN(spool, OpenSpool());
  EXPECT_THAT(Keys(spool->Pending(10)),
              ElementsAre(Pair("a", 1), Pair("a", 2)));
}

TEST_F(SpoolTest, TornLastRecordIsCutAndTheSpoolStaysUsable) {
  {
    ASSERT_OK_AND_ASSIGN(auto spool, OpenSpool());
    for (int64_t s = 1; s <= 3; ++s) {
      ASSERT_THAT(spool->Append({Record("a", s, 60 * (s - 1), 60 * s)}),
                  IsOk());
    }
  }
  const int64_t full = LogSize();
  ASSERT_EQ(full % 3, 0);  // Three frames of one size.
  const int64_t frame = full / 3;
  ASSERT_EQ(::truncate(LogPath().c_str(), full - 3), 0);

  ::testing::internal::CaptureStderr();
  auto opened = OpenSpool();
  const std::string err = ::testing::internal::GetCapturedStderr();
  ASSERT_THAT(opened, IsOk());
  std::unique_ptr<Spool> spool = *std::move(opened);
  EXPECT_THAT(err, HasSubstr(absl::StrCat(
                       "voucher-agent: spool: cut a torn record of ", frame - 3,
                       " bytes at offset ", 2 * frame, " of ", LogPath())));
  EXPECT_THAT(Keys(spool->Pending(10)),
              ElementsAre(Pair("a", 1), Pair("a", 2)));
  ASSERT_TRUE(spool->CursorOf("a").has_value());
  EXPECT_EQ(spool->CursorOf("a")->next_sequence, 3);
  EXPECT_EQ(spool->CursorOf("a")->resume_at, T(120));
  ASSERT_THAT(spool->Append({Record("a", 3, 120, 180)}), IsOk());
  spool.reset();

  ASSERT_OK_AND_ASSIGN(spool, OpenSpool());
  EXPECT_THAT(Keys(spool->Pending(10)),
              ElementsAre(Pair("a", 1), Pair("a", 2), Pair("a", 3)));
}

TEST_F(SpoolTest, GarbageAfterTheLastRecordIsCut) {
  for (const std::string& garbage : std::vector<std::string>{
           std::string("\x01\x02\x03", 3), std::string("garbage after the log"),
           std::string(4096, '\0'),
           std::string("\x05\0\0\0\0\0\0\0xyzzy", 13)}) {
    SCOPED_TRACE(garbage.size());
    std::filesystem::remove_all(dir_);
    {
      ASSERT_OK_AND_ASSIGN(auto spool, OpenSpool());
      ASSERT_THAT(
          spool->Append({Record("a", 1, 0, 60), Record("a", 2, 60, 90)}),
          IsOk());
    }
    const std::string log = ReadLog();
    WriteLog(log + garbage);
    ::testing::internal::CaptureStderr();
    auto opened = OpenSpool();
    const std::string err = ::testing::internal::GetCapturedStderr();
    ASSERT_THAT(opened, IsOk());
    std::unique_ptr<Spool> spool = *std::move(opened);
    EXPECT_THAT(err,
                HasSubstr(absl::StrCat("cut a torn record of ", garbage.size(),
                                       " bytes at offset ", log.size())));
    EXPECT_THAT(Keys(spool->Pending(10)),
                ElementsAre(Pair("a", 1), Pair("a", 2)));
    EXPECT_EQ(spool->live_bytes(), LogSize());
    ASSERT_THAT(spool->Append({Record("a", 3, 90, 120)}), IsOk());
    spool.reset();
    ASSERT_OK_AND_ASSIGN(spool, OpenSpool());
    EXPECT_EQ(spool->depth(), 3);
  }
}

TEST_F(SpoolTest, CorruptRecordBeforeTheEndIsDataLoss) {
  {
    ASSERT_OK_AND_ASSIGN(auto spool, OpenSpool());
    for (int64_t s = 1; s <= 3; ++s) {
      ASSERT_THAT(spool->Append({Record("a", s, 60 * (s - 1), 60 * s)}),
                  IsOk());
    }
  }
  const std::string log = ReadLog();
  ASSERT_EQ(log.size() % 3, 0u);
  const size_t frame = log.size() / 3;

  // A flipped payload byte in the second frame, and a flipped length byte in
  // the first.
  for (const auto& [flip, offset] :
       std::vector<std::pair<size_t, size_t>>{{frame + 12, frame}, {0, 0}}) {
    SCOPED_TRACE(flip);
    std::string bad = log;
    bad[flip] = static_cast<char>(bad[flip] ^ 0x40);
    WriteLog(bad);
    EXPECT_THAT(OpenSpool(),
                StatusIs(absl::StatusCode::kDataLoss,
                         ::testing::AllOf(
                             HasSubstr(LogPath()),
                             HasSubstr(absl::StrCat("offset ", offset, " ")))));
    // Nothing was cut.
    EXPECT_EQ(ReadLog(), bad);
  }

  // The same flip in the last frame is a torn tail.
  std::string bad = log;
  bad[2 * frame + 12] = static_cast<char>(bad[2 * frame + 12] ^ 0x40);
  WriteLog(bad);
  ::testing::internal::CaptureStderr();
  auto opened = OpenSpool();
  ::testing::internal::GetCapturedStderr();
  ASSERT_THAT(opened, IsOk());
  EXPECT_EQ((*opened)->depth(), 2);
}

TEST_F(SpoolTest, CompactionKeepsTheLogSmall) {
  constexpr int64_t kRecords = 2000;
  {
    ASSERT_OK_AND_ASSIGN(auto spool, OpenSpool());
    for (int64_t s = 1; s <= kRecords; ++s) {
      ASSERT_THAT(spool->Append({Record("alloc-a", s, 10 * s, 10 * s + 10),
                                 Record("alloc-b", s, 10 * s, 10 * s + 5)}),
                  IsOk());
      std::vector<std::pair<std::string, int64_t>> acks = {{"alloc-b", s}};
      if (s % 100 != 0) acks.emplace_back("alloc-a", s);
      ASSERT_THAT(spool->Acknowledge(acks), IsOk());
      // Either under the threshold or at most half dead.
      ASSERT_LE(LogSize(), std::max<int64_t>(64 << 10, 2 * spool->live_bytes()))
          << "after record " << s;
    }
    EXPECT_EQ(spool->depth(), kRecords / 100);
  }
  ASSERT_OK_AND_ASSIGN(auto spool, OpenSpool());
  // Open compacts: the log is exactly its live part.
  EXPECT_EQ(LogSize(), spool->live_bytes());
  EXPECT_LT(LogSize(), 8 << 10);
  const std::vector<pb::UsageRecord> pending = spool->Pending(1000);
  ASSERT_EQ(pending.size(), static_cast<size_t>(kRecords / 100));
  for (size_t i = 0; i < pending.size(); ++i) {
    const int64_t s = 100 * static_cast<int64_t>(i + 1);
    EXPECT_EQ(pending[i].allocation_id(), "alloc-a");
    EXPECT_EQ(pending[i].sequence(), s);
    EXPECT_EQ(pending[i].start().seconds(), absl::ToUnixSeconds(T(10 * s)));
  }
  EXPECT_EQ(spool->CursorOf("alloc-a")->next_sequence, kRecords + 1);
  EXPECT_EQ(spool->CursorOf("alloc-b")->next_sequence, kRecords + 1);
  EXPECT_EQ(spool->CursorOf("alloc-b")->resume_at, T(10 * kRecords + 5));
  EXPECT_THAT(spool->Append({Record("alloc-b", kRecords + 1, 10 * kRecords + 5,
                                    10 * kRecords + 9)}),
              IsOk());
}

TEST_F(SpoolTest, PendingIsInAppendOrderAndLimited) {
  ASSERT_OK_AND_ASSIGN(auto spool, OpenSpool());
  ASSERT_THAT(spool->Append({Record("b", 1, 0, 10)}), IsOk());
  ASSERT_THAT(spool->Append({Record("a", 1, 0, 10), Record("b", 2, 10, 20)}),
              IsOk());
  ASSERT_THAT(spool->Append({Record("a", 2, 10, 20)}), IsOk());
  EXPECT_THAT(
      Keys(spool->Pending(100)),
      ElementsAre(Pair("b", 1), Pair("a", 1), Pair("b", 2), Pair("a", 2)));
  EXPECT_THAT(Keys(spool->Pending(3)),
              ElementsAre(Pair("b", 1), Pair("a", 1), Pair("b", 2)));
  EXPECT_TRUE(spool->Pending(0).empty());
  ASSERT_THAT(spool->Acknowledge({{"a", 1}}), IsOk());
  EXPECT_THAT(Keys(spool->Pending(2)), ElementsAre(Pair("b", 1), Pair("b", 2)));
  EXPECT_EQ(spool->PendingOf("a"), 1);
  EXPECT_EQ(spool->PendingOf("b"), 2);
}

TEST_F(SpoolTest, GaugesFollowTheBacklog) {
  ASSERT_OK_AND_ASSIGN(auto spool, OpenSpool());
  EXPECT_EQ(spool->depth(), 0);
  EXPECT_EQ(spool->live_bytes(), 0);
  EXPECT_EQ(spool->oldest_pending_end(), std::nullopt);

  ASSERT_THAT(spool->SetCursor("a", {1, T(0)}), IsOk());
  const int64_t cursor_bytes = spool->live_bytes();
  EXPECT_GT(cursor_bytes, 8);
  EXPECT_EQ(cursor_bytes, LogSize());  // One cursor frame on disk.
  EXPECT_EQ(spool->depth(), 0);
  EXPECT_EQ(spool->oldest_pending_end(), std::nullopt);

  ASSERT_THAT(spool->Append({Record("a", 1, 0, 60)}), IsOk());
  const int64_t one = spool->live_bytes();
  // The usage frame was added and the cursor, now (2, 60), still counts once
  // with a frame of the same size.
  EXPECT_EQ(one, LogSize());
  ASSERT_THAT(spool->Append({Record("b", 1, 0, 30), Record("a", 2, 60, 90)}),
              IsOk());
  EXPECT_EQ(spool->depth(), 3);
  EXPECT_EQ(spool->oldest_pending_end(), T(30));
  const int64_t three = spool->live_bytes();
  EXPECT_GT(three, one);

  ASSERT_THAT(spool->Acknowledge({{"b", 1}}), IsOk());
  EXPECT_EQ(spool->depth(), 2);
  EXPECT_EQ(spool->oldest_pending_end(), T(60));
  ASSERT_THAT(spool->Acknowledge({{"a", 1}, {"a", 2}}), IsOk());
  EXPECT_EQ(spool->depth(), 0);
  EXPECT_EQ(spool->oldest_pending_end(), std::nullopt);
  ASSERT_THAT(spool->Forget("a"), IsOk());
  ASSERT_THAT(spool->Forget("b"), IsOk());
  EXPECT_EQ(spool->live_bytes(), 0);
  spool.reset();

  ASSERT_OK_AND_ASSIGN(spool, OpenSpool());
  EXPECT_EQ(spool->live_bytes(), 0);
  EXPECT_EQ(LogSize(), 0);
}

TEST_F(SpoolTest, LiveBytesMatchTheCompactedLog) {
  int64_t live = 0;
  {
    ASSERT_OK_AND_ASSIGN(auto spool, OpenSpool());
    ASSERT_THAT(spool->SetCursor("c", {4, T(5)}), IsOk());
    ASSERT_THAT(spool->Append({Record("a", 1, 0, 60), Record("b", 1, 0, 30),
                               Record("a", 2, 60, 90)}),
                IsOk());
    ASSERT_THAT(spool->Acknowledge({{"a", 1}}), IsOk());
    live = spool->live_bytes();
  }
  ASSERT_OK_AND_ASSIGN(auto spool, OpenSpool());
  EXPECT_EQ(spool->live_bytes(), live);
  EXPECT_EQ(LogSize(), live);
  EXPECT_THAT(Keys(spool->Pending(10)),
              ElementsAre(Pair("b", 1), Pair("a", 2)));
  EXPECT_THAT(spool->Allocations(), ElementsAre("a", "b", "c"));
  EXPECT_EQ(spool->CursorOf("c")->next_sequence, 4);
  EXPECT_EQ(spool->CursorOf("c")->resume_at, T(5));
}

TEST_F(SpoolTest, ConcurrentWritersKeepEveryAllocationConsistent) {
  constexpr int kThreads = 4;
  constexpr int64_t kRecords = 200;
  {
    ASSERT_OK_AND_ASSIGN(auto spool, OpenSpool());
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&spool, t] {
        const std::string id = absl::StrCat("alloc-", t);
        for (int64_t s = 1; s <= kRecords; ++s) {
          EXPECT_THAT(spool->Append({Record(id, s, s, s + 1)}), IsOk());
          if (s % 2 == 0) {
            EXPECT_THAT(spool->Acknowledge({{id, s}}), IsOk());
          }
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    EXPECT_EQ(spool->depth(), kThreads * kRecords / 2);
  }
  ASSERT_OK_AND_ASSIGN(auto spool, OpenSpool());
  EXPECT_EQ(spool->depth(), kThreads * kRecords / 2);
  for (int t = 0; t < kThreads; ++t) {
    const std::string id = absl::StrCat("alloc-", t);
    EXPECT_EQ(spool->PendingOf(id), kRecords / 2) << id;
    ASSERT_TRUE(spool->CursorOf(id).has_value()) << id;
    EXPECT_EQ(spool->CursorOf(id)->next_sequence, kRecords + 1) << id;
  }
}

}  // namespace
}  // namespace computevoucher::agent
