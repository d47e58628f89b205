// Archived periods through the API (issue 15, item 4), on both stores: once
// the log's oldest part is archived, statements and settlement of archived
// days answer as before and verify replays the archive's files, refusing
// changed ones; a run that stopped after anchoring is finished by the next.
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>

#include "absl/time/time.h"
#include "common/deflate.h"
#include "common/sha256.h"
#include "common/time_util.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "scheduler/engine/archive.h"
#include "scheduler/store/open_store.h"
#include "scheduler/verify_command.h"
#include "tests/scheduler/api/history_fixture.h"

namespace computevoucher::testing {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::HasSubstr;

// A trigger that makes the store's drop fail as a crash would stop it.
constexpr char kSqliteCrash[] =
    "CREATE TRIGGER crash BEFORE INSERT ON archive_horizon BEGIN SELECT "
    "RAISE(ABORT, 'crashed before the drop'); END";
constexpr char kPostgresCrashFunction[] =
    "CREATE FUNCTION crash() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN "
    "RAISE EXCEPTION 'crashed before the drop'; END$$";
constexpr char kPostgresCrash[] =
    "CREATE TRIGGER crash BEFORE INSERT ON archive_horizon FOR EACH ROW "
    "EXECUTE FUNCTION crash()";

using ArchiveApiTest = HistoryOnStoreTest;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Forges a copy of `archives` as someone hiding spending would, covering
// the tracks the files themselves keep: one archived charge lowered by a
// fen, its part deflated again, and the part's size and hash in the
// manifest made to match. Returns the copy's directory.
std::string ForgeLoweredCharge(const std::string& archives,
                               const engine::ArchiveReport& report) {
  const std::string forged = archives + "-forged";
  std::filesystem::copy(archives, forged,
                        std::filesystem::copy_options::recursive);
  const std::string dir =
      forged + "/" +
      std::filesystem::path(report.directory).filename().string();
  pb::ArchiveManifest manifest = report.manifest;
  bool lowered = false;
  for (pb::ArchivePartFile& file : *manifest.mutable_parts()) {
    if (file.kind() != "entries" || lowered) continue;
    const std::string path = dir + "/" + file.file();
    absl::StatusOr<std::string> raw = Inflate(Slurp(path), 1 << 30);
    EXPECT_TRUE(raw.ok()) << raw.status();
    pb::ArchivePart part;
    EXPECT_TRUE(part.ParseFromString(raw.value_or("")));
    for (pb::JournalEntry& e : *part.mutable_entries()) {
      if (e.kind() != pb::ENTRY_KIND_CHARGE || e.amount_fen() < 2) continue;
      e.set_amount_fen(e.amount_fen() - 1);
      lowered = true;
      break;
    }
    if (!lowered) continue;
    const std::string bytes = Deflate(part.SerializeAsString());
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
    file.set_bytes(static_cast<int64_t>(bytes.size()));
    file.set_sha256(ToHex(Sha256(bytes)));
  }
  EXPECT_TRUE(lowered) << "no archived charge to lower";
  // Printed as the archive prints it: only what was forged differs.
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  std::string json;
  EXPECT_TRUE(
      google::protobuf::util::MessageToJsonString(manifest, &json, options)
          .ok());
  std::ofstream(dir + "/" + engine::kManifestFile, std::ios::trunc) << json;
  return forged;
}

INSTANTIATE_TEST_SUITE_P(Stores, ArchiveApiTest,
                         ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

// A forged archive whose files agree with each other is refused: its
// manifest is not the one the journal anchored, the charge its command
// posts on replay is not the one it holds, and the chain breaks after it.
void ExpectForgedArchiveRefused(const pb::SchedulerConfig& config,
                                const std::string& archives,
                                const engine::ArchiveReport& report) {
  std::ostringstream forged;
  EXPECT_EQ(scheduler::RunVerify(config, ForgeLoweredCharge(archives, report),
                                 forged),
            1)
      << forged.str();
  EXPECT_THAT(forged.str(),
              HasSubstr("the manifest was changed after it was anchored"));
  EXPECT_THAT(forged.str(), HasSubstr("posts on replay"));
  EXPECT_THAT(forged.str(),
              HasSubstr("does not match the previous entry's hash"));
}

TEST_P(ArchiveApiTest, ArchivedDaysStillAnswerAndVerifyFromTheirFiles) {
  const absl::Time march = clock_.Now();  // 2025-03-01 00:00 +08:00
  ASSERT_NO_FATAL_FAILURE(UseInMarchAndApril());
  const absl::Time until = march + absl::Hours(24 * 61);  // a day's start
  const pb::Statement statement = Statement(march, until);
  ASSERT_EQ(statement.lines_size(), 2);
  const pb::Settlement settlement = Settlement(march, until);
  ASSERT_EQ(settlement.lines_size(), 1);
  ASSERT_EQ(settlement.lines(0).records(), 2);

  // Archive March 1..19 from the stopped scheduler's store, on May 20.
  clock_.Advance(absl::Hours(24 * 40));
  server_->Shutdown(absl::ZeroDuration());
  server_.reset();
  const std::string archives = temp_.path() + "/archives";
  const absl::Time before = march + absl::Hours(24 * 19);
  engine::ArchiveReport report;
  {
    auto store = store::OpenStore(config_, store::OpenMode::kReadWrite);
    ASSERT_TRUE(store.ok()) << store.status();
    absl::StatusOr<engine::ArchiveReport> archived =
        engine::ArchiveBefore(**store, clock_, before, archives);
    ASSERT_TRUE(archived.ok()) << archived.status();
    report = *archived;
    EXPECT_TRUE(report.archived);
    EXPECT_GT(report.commands, 10);
    EXPECT_GT(report.entries, 3);
    EXPECT_EQ(report.usage_records, 1);
    // The range is gone: a second run finds nothing more before the date.
    archived = engine::ArchiveBefore(**store, clock_, before, archives);
    ASSERT_TRUE(archived.ok()) << archived.status();
    EXPECT_FALSE(archived->archived);
    // An open period is refused, naming the flag.
    archived = engine::ArchiveBefore(
        **store, clock_, clock_.Now() - absl::Hours(24 * 30), archives);
    EXPECT_EQ(archived.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(archived.status().message(), HasSubstr("--before"));
  }
  ASSERT_NO_FATAL_FAILURE(StartAgain());

  // Statement and settlement of periods reaching into archived days answer
  // as before, from the day sums and the records still stored.
  EXPECT_TRUE(MessageDifferencer::Equals(Statement(march, until), statement))
      << Statement(march, until).ShortDebugString();
  EXPECT_TRUE(MessageDifferencer::Equals(Settlement(march, until), settlement));
  // The archived record was accepted at 00:10 on March 1: a period starting
  // before that must start on a day.
  pb::GetStatementRequest mid_day;
  *mid_day.mutable_period_start() = ToProto(march - absl::Hours(12));
  *mid_day.mutable_period_end() = ToProto(until);
  pb::Statement refused;
  const grpc::Status s =
      enterprise_->GetStatement(As(e3_token_).get(), mid_day, &refused);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("period_start"));
  EXPECT_THAT(s.error_message(), HasSubstr("archived"));
  // Usage pages list the records still stored, and say from when.
  pb::ListUsageResponse page;
  ASSERT_TRUE(
      enterprise_->ListUsage(As(e3_token_).get(), pb::ListUsageRequest(), &page)
          .ok());
  ASSERT_EQ(page.usage_size(), 1);
  EXPECT_GT(FromProto("end", page.usage(0).record().end()).value(), before);
  ASSERT_TRUE(page.has_archived_until());
  EXPECT_LT(FromProto("archived_until", page.archived_until()).value(), before);
  pb::ListUsageRequest later;
  *later.mutable_period_start() = ToProto(before);
  ASSERT_TRUE(enterprise_->ListUsage(As(e3_token_).get(), later, &page).ok());
  EXPECT_FALSE(page.has_archived_until());
  // The API's check starts from the snapshot stored after the archive.
  const pb::VerifyJournalResponse verified = VerifyJournal();
  EXPECT_TRUE(verified.ok()) << verified.violations(0);
  EXPECT_GE(verified.from_snapshot(), report.manifest.through().command());

  ExpectForgedArchiveRefused(config_, archives, report);
  ExpectVerifiedFromFilesAndChangedOnesRefused(archives, report);
}

// A crash after the anchor is durable but before the store dropped the
// range: the next run writes the same files, finds the anchor and only
// drops; verify then finds the anchored hash equal to the manifest's.
TEST_P(ArchiveApiTest, AnArchiveStoppedBeforeItsDropIsFinishedByTheNextRun) {
  const absl::Time march = clock_.Now();
  ASSERT_NO_FATAL_FAILURE(UseInMarchAndApril());
  clock_.Advance(absl::Hours(24 * 40));
  server_->Shutdown(absl::ZeroDuration());
  server_.reset();
  if (GetParam() == "postgres") Execute(kPostgresCrashFunction);
  Execute(kPostgresCrash, kSqliteCrash);
  const std::string archives = temp_.path() + "/archives";
  const absl::Time before = march + absl::Hours(24 * 19);
  int64_t anchored_head = 0;
  {
    auto store = store::OpenStore(config_, store::OpenMode::kReadWrite);
    ASSERT_TRUE(store.ok()) << store.status();
    const int64_t head = (*store)->ReadHead()->command_sequence;
    const absl::StatusOr<engine::ArchiveReport> crashed =
        engine::ArchiveBefore(**store, clock_, before, archives);
    EXPECT_THAT(crashed.status().message(), HasSubstr("crashed before"));
    anchored_head = (*store)->ReadHead()->command_sequence;
    EXPECT_EQ(anchored_head, head + 1);  // the anchor is durable
    EXPECT_FALSE((*store)->ReadHorizon()->has_value());
  }
  Execute("DROP TRIGGER crash ON archive_horizon", "DROP TRIGGER crash");
  // With the files lost too, the next run writes them again, byte for byte
  // as anchored (map entries of heartbeats included).
  std::filesystem::remove_all(archives);
  {
    auto store = store::OpenStore(config_, store::OpenMode::kReadWrite);
    ASSERT_TRUE(store.ok()) << store.status();
    // Another date would archive another range: refused, naming the one
    // anchored.
    const absl::StatusOr<engine::ArchiveReport> other = engine::ArchiveBefore(
        **store, clock_, before + absl::Hours(24), archives);
    EXPECT_EQ(other.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(other.status().message(), HasSubstr("earlier run anchored"));
    const absl::StatusOr<engine::ArchiveReport> finished =
        engine::ArchiveBefore(**store, clock_, before, archives);
    ASSERT_TRUE(finished.ok()) << finished.status();
    EXPECT_TRUE(finished->archived);
    EXPECT_TRUE(finished->resumed);
    EXPECT_EQ((*store)->ReadHead()->command_sequence, anchored_head);
    EXPECT_TRUE((*store)->ReadHorizon()->has_value());
  }
  std::ostringstream out;
  EXPECT_EQ(scheduler::RunVerify(config_, archives, out), 0) << out.str();
  // The day sums statements read are checked against the archived records.
  Execute("UPDATE usage_days SET cost_fen = cost_fen + 1");
  std::ostringstream changed;
  EXPECT_EQ(scheduler::RunVerify(config_, archives, changed), 1)
      << changed.str();
  EXPECT_THAT(changed.str(), HasSubstr("the store's day sums say"));
}

}  // namespace
}  // namespace computevoucher::testing
