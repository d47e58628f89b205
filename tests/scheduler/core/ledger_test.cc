#include "scheduler/core/ledger.h"

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/sha256.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace computevoucher::core {
namespace {

using ::computevoucher::testing::IsOk;
using ::computevoucher::testing::StatusIs;
using ::testing::HasSubstr;
namespace pb = ::computevoucher::v1;

pb::JournalEntry MakeEntry(pb::EntryKind kind, const std::string& debit,
                           const std::string& credit, int64_t amount,
                           const std::string& key) {
  pb::JournalEntry e;
  e.set_kind(kind);
  e.set_debit_account(debit);
  e.set_credit_account(credit);
  e.set_amount_fen(amount);
  e.set_idempotency_key(key);
  return e;
}

const absl::Time kT0 = absl::FromUnixSeconds(1'740'000'000);

// Funds program P with 1000 at kT0 and issues voucher V 300 of it at
// `issued`.
void FundAndIssue(Ledger& ledger, absl::Time issued) {
  ASSERT_THAT(
      ledger.Post(MakeEntry(pb::ENTRY_KIND_FUND, ProgramBudgetAccount("P"),
                            ProgramSourceAccount("P"), 1000, "fund/P"),
                  kT0),
      IsOk());
  ASSERT_THAT(ledger.Post(MakeEntry(pb::ENTRY_KIND_ISSUE, VoucherAccount("V"),
                                    ProgramBudgetAccount("P"), 300, "issue/V"),
                          issued),
              IsOk());
}

TEST(Ledger, MovesValueAndCachesBalances) {
  Ledger ledger;
  ASSERT_NO_FATAL_FAILURE(FundAndIssue(ledger, kT0));
  EXPECT_EQ(ledger.Balance(ProgramSourceAccount("P")), -1000);
  EXPECT_EQ(ledger.Balance(ProgramBudgetAccount("P")), 700);
  EXPECT_EQ(ledger.Balance(VoucherAccount("V")), 300);
  EXPECT_EQ(ledger.Balance("never/used"), 0);
  EXPECT_EQ(ledger.last_sequence(), 2);
}

TEST(Ledger, RefusesOverdraftAndChangesNothing) {
  Ledger ledger;
  ASSERT_THAT(
      ledger.Post(MakeEntry(pb::ENTRY_KIND_FUND, ProgramBudgetAccount("P"),
                            ProgramSourceAccount("P"), 100, "fund/P"),
                  kT0),
      IsOk());
  const std::string head = ledger.last_hash();
  EXPECT_THAT(ledger.Post(MakeEntry(pb::ENTRY_KIND_ISSUE, VoucherAccount("V"),
                                    ProgramBudgetAccount("P"), 101, "issue/V"),
                          kT0),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("need 1.01 CNY, have 1.00 CNY")));
  EXPECT_EQ(ledger.Balance(ProgramBudgetAccount("P")), 100);
  EXPECT_EQ(ledger.Balance(VoucherAccount("V")), 0);
  EXPECT_EQ(ledger.last_sequence(), 1);
  EXPECT_EQ(ledger.last_hash(), head);
  // The refused entry did not use up its key.
  EXPECT_THAT(ledger.Post(MakeEntry(pb::ENTRY_KIND_ISSUE, VoucherAccount("V"),
                                    ProgramBudgetAccount("P"), 100, "issue/V"),
                          kT0),
              IsOk());
}

TEST(Ledger, RejectsMalformedEntries) {
  Ledger ledger;
  const struct {
    pb::JournalEntry entry;
    absl::StatusCode code;
  } cases[] = {
      {MakeEntry(pb::ENTRY_KIND_FUND, "a", ProgramSourceAccount("P"), 0, "k0"),
       absl::StatusCode::kInvalidArgument},
      {MakeEntry(pb::ENTRY_KIND_FUND, "a", ProgramSourceAccount("P"), -5, "k1"),
       absl::StatusCode::kInvalidArgument},
      {MakeEntry(pb::ENTRY_KIND_FUND, "a", "a", 5, "k2"),
       absl::StatusCode::kInvalidArgument},
      {MakeEntry(pb::ENTRY_KIND_FUND, "", ProgramSourceAccount("P"), 5, "k3"),
       absl::StatusCode::kInvalidArgument},
      {MakeEntry(pb::ENTRY_KIND_FUND, "a", ProgramSourceAccount("P"), 5, ""),
       absl::StatusCode::kInvalidArgument},
  };
  for (const auto& c : cases) {
    EXPECT_THAT(ledger.Post(pb::JournalEntry(c.entry), kT0), StatusIs(c.code))
        << c.entry.DebugString();
  }
  EXPECT_EQ(ledger.last_sequence(), 0);
}

TEST(Ledger, RefusesARepeatedIdempotencyKey) {
  Ledger ledger;
  const pb::JournalEntry fund =
      MakeEntry(pb::ENTRY_KIND_FUND, ProgramBudgetAccount("P"),
                ProgramSourceAccount("P"), 100, "fund/P");
  ASSERT_THAT(ledger.Post(pb::JournalEntry(fund), kT0), IsOk());
  EXPECT_THAT(ledger.Post(pb::JournalEntry(fund), kT0),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_EQ(ledger.Balance(ProgramBudgetAccount("P")), 100);
}

// A charge of usage: unique by allocation and sequence.
pb::JournalEntry Charge(const std::string& allocation, int64_t sequence) {
  pb::JournalEntry e =
      MakeEntry(pb::ENTRY_KIND_CHARGE, PayableAccount("PR"),
                HoldAccount(allocation), 10,
                absl::StrCat("charge/", allocation, "/", sequence));
  e.set_allocation_id(allocation);
  e.set_usage_sequence(sequence);
  return e;
}

TEST(Ledger, ChargesUsageOnlyAfterTheAllocationsLastChargedSequence) {
  Ledger ledger;
  for (const char* a : {"A", "B"}) {
    ASSERT_THAT(
        ledger.Post(MakeEntry(pb::ENTRY_KIND_HOLD, HoldAccount(a),
                              ProgramSourceAccount("P"), 100,
                              absl::StrCat("hold/", a)),
                    kT0),
        IsOk());
  }
  ASSERT_THAT(ledger.Post(Charge("A", 1), kT0), IsOk());
  ASSERT_THAT(ledger.Post(Charge("A", 3), kT0), IsOk());
  // Another allocation's sequences are its own.
  ASSERT_THAT(ledger.Post(Charge("B", 1), kT0), IsOk());
  for (int64_t sequence : {1, 2, 3}) {
    EXPECT_THAT(ledger.Post(Charge("A", sequence), kT0),
                StatusIs(absl::StatusCode::kAlreadyExists,
                         HasSubstr("not after the last one charged, 3")));
  }
  pb::JournalEntry no_allocation = Charge("A", 4);
  no_allocation.clear_allocation_id();
  EXPECT_THAT(ledger.Post(std::move(no_allocation), kT0),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(ledger.last_sequence(), 5);
  EXPECT_EQ(ledger.Balance(HoldAccount("A")), 80);
}

TEST(Ledger, SavedAndLoadedGoesOnAsTheOriginal) {
  Ledger original;
  ASSERT_THAT(original.Post(MakeEntry(pb::ENTRY_KIND_HOLD, HoldAccount("A"),
                                      ProgramSourceAccount("P"), 100, "hold/A"),
                            kT0),
              IsOk());
  ASSERT_THAT(original.Post(Charge("A", 2), kT0), IsOk());
  pb::LedgerSnapshot saved;
  original.Save(&saved);
  Ledger loaded;
  ASSERT_THAT(loaded.Load(saved), IsOk());
  EXPECT_EQ(loaded.balances(), original.balances());
  EXPECT_EQ(loaded.last_sequence(), 2);
  EXPECT_EQ(loaded.last_hash(), original.last_hash());
  EXPECT_TRUE(loaded.TakePosted().empty());
  // Keys and marks came along: the same refusals, the same next entry.
  for (Ledger* ledger : {&original, &loaded}) {
    EXPECT_THAT(ledger->Post(MakeEntry(pb::ENTRY_KIND_HOLD, HoldAccount("A"),
                                       ProgramSourceAccount("P"), 1, "hold/A"),
                             kT0),
                StatusIs(absl::StatusCode::kAlreadyExists));
    EXPECT_THAT(ledger->Post(Charge("A", 2), kT0),
                StatusIs(absl::StatusCode::kAlreadyExists));
    ASSERT_THAT(ledger->Post(Charge("A", 3), kT0), IsOk());
  }
  EXPECT_EQ(loaded.last_hash(), original.last_hash());

  // A ledger already in use is not loaded into.
  EXPECT_THAT(original.Load(saved),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  pb::LedgerSnapshot bad_hash = saved;
  bad_hash.set_last_hash("short");
  Ledger fresh;
  EXPECT_THAT(fresh.Load(bad_hash),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(Ledger, RefusesOverflow) {
  Ledger ledger;
  const int64_t big = std::numeric_limits<int64_t>::max();
  ASSERT_THAT(ledger.Post(MakeEntry(pb::ENTRY_KIND_FUND, "acc",
                                    ProgramSourceAccount("P"), big, "a"),
                          kT0),
              IsOk());
  EXPECT_THAT(ledger.Post(MakeEntry(pb::ENTRY_KIND_FUND, "acc",
                                    ProgramSourceAccount("Q"), 1, "b"),
                          kT0),
              StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_EQ(ledger.Balance("acc"), big);
}

TEST(Ledger, ChainsHashesOverEveryField) {
  Ledger ledger;
  ASSERT_NO_FATAL_FAILURE(FundAndIssue(ledger, kT0 + absl::Seconds(1)));
  std::vector<pb::JournalEntry> posted = ledger.TakePosted();
  ASSERT_EQ(posted.size(), 2u);
  EXPECT_EQ(posted[0].prev_hash(), std::string(kSha256Bytes, '\0'));
  EXPECT_EQ(posted[1].prev_hash(), posted[0].hash());
  EXPECT_EQ(posted[1].hash(), ledger.last_hash());
  for (const pb::JournalEntry& e : posted) EXPECT_EQ(EntryHash(e), e.hash());
  // Any change of content changes the hash.
  pb::JournalEntry tampered = posted[1];
  tampered.set_amount_fen(301);
  EXPECT_NE(EntryHash(tampered), posted[1].hash());
  tampered = posted[1];
  tampered.set_memo("x");
  EXPECT_NE(EntryHash(tampered), posted[1].hash());
  tampered = posted[1];
  tampered.mutable_time()->set_nanos(1);
  EXPECT_NE(EntryHash(tampered), posted[1].hash());
  EXPECT_TRUE(ledger.TakePosted().empty());
}

// A replay's known hashes: taken for the entries they know, and chained on.
TEST(Ledger, TakesTheHashesAReplayKnowsAndHashesTheRest) {
  class Known final : public KnownHashes {
   public:
    const std::string* HashOf(const pb::JournalEntry& entry) override {
      asked.push_back(entry);
      return entry.sequence() == 1 ? &hash : nullptr;
    }
    std::string hash = std::string(kSha256Bytes, 'k');
    std::vector<pb::JournalEntry> asked;
  };
  Known known;
  Ledger ledger;
  ledger.set_known_hashes(&known);
  ASSERT_NO_FATAL_FAILURE(FundAndIssue(ledger, kT0));
  ledger.set_known_hashes(nullptr);
  ASSERT_THAT(ledger.Post(MakeEntry(pb::ENTRY_KIND_ISSUE, VoucherAccount("W"),
                                    ProgramBudgetAccount("P"), 300, "issue/W"),
                          kT0),
              IsOk());
  const std::vector<pb::JournalEntry> posted = ledger.TakePosted();
  ASSERT_EQ(posted.size(), 3u);
  // Asked with everything hashed filled in.
  ASSERT_EQ(known.asked.size(), 2u);
  EXPECT_EQ(known.asked[1].prev_hash(), known.hash);
  EXPECT_EQ(known.asked[1].time().seconds(), absl::ToUnixSeconds(kT0));
  EXPECT_EQ(posted[0].hash(), known.hash);
  EXPECT_EQ(posted[1].prev_hash(), known.hash);
  EXPECT_EQ(posted[1].hash(), EntryHash(posted[1]));
  EXPECT_EQ(posted[2].hash(), EntryHash(posted[2]));
  EXPECT_EQ(ledger.last_hash(), posted[2].hash());
}

// Replay takes equal contents and hash for an equal entry, and the chain
// protects only what is hashed: every field but `hash` must be in it,
// fields added later included.
TEST(Ledger, TheHashCoversEveryFieldButItself) {
  pb::JournalEntry base = MakeEntry(pb::ENTRY_KIND_ISSUE, VoucherAccount("V"),
                                    ProgramBudgetAccount("P"), 300, "issue/V");
  const google::protobuf::Descriptor& d = *pb::JournalEntry::descriptor();
  const google::protobuf::Reflection& r = *pb::JournalEntry::GetReflection();
  for (int i = 0; i < d.field_count(); ++i) {
    const google::protobuf::FieldDescriptor& f = *d.field(i);
    pb::JournalEntry changed = base;
    switch (f.cpp_type()) {
      case google::protobuf::FieldDescriptor::CPPTYPE_STRING:
        r.SetString(&changed, &f, r.GetString(base, &f) + "x");
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_INT64:
        r.SetInt64(&changed, &f, r.GetInt64(base, &f) + 1);
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_INT32:
        r.SetInt32(&changed, &f, r.GetInt32(base, &f) + 1);
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_ENUM:
        r.SetEnumValue(&changed, &f, r.GetEnumValue(base, &f) + 1);
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE:
        changed.mutable_time()->set_seconds(base.time().seconds() + 1);
        ASSERT_EQ(f.name(), "time") << "a new message field: cover it here";
        break;
      default:
        FAIL() << f.name() << ": a type this test does not change yet";
    }
    if (f.name() == "hash") {
      EXPECT_TRUE(SameContents(changed, base));
    } else {
      EXPECT_FALSE(SameContents(changed, base)) << f.name();
      EXPECT_NE(EntryHash(changed), EntryHash(base)) << f.name();
    }
  }
}

// The chain's encoding never changes: every stored journal is chained by
// it. An entry with every field set hashes to what it always did.
TEST(Ledger, TheHashOfAnEntryIsTheOneItAlwaysHad) {
  pb::JournalEntry e =
      MakeEntry(pb::ENTRY_KIND_CHARGE, PayableAccount("PR-000001"),
                HoldAccount("AL-00000001"), 1234, "charge/7");
  e.set_prev_hash(std::string(kSha256Bytes, '\x5a'));
  e.set_sequence(42);
  e.set_program_id("P-000001");
  e.set_voucher_id("CV-2025-000001");
  e.set_allocation_id("AL-00000001");
  e.set_provider_id("PR-000001");
  e.set_usage_sequence(7);
  e.mutable_time()->set_seconds(1'740'758'400);
  e.mutable_time()->set_nanos(123'456'789);
  e.set_memo("a memo, with UTF-8: 算力券");
  e.set_command_sequence(99);
  e.set_hash("ignored");
  // Computed apart from this code, from the encoding journal_hash.cc
  // describes (Python: struct.pack("<q", n) and hashlib.sha256).
  EXPECT_EQ(ToHex(EntryHash(e)),
            "76d661b3206909fc64f36bf38f0192345a11f1cda90f4e691ec7985b2acf1b28");
}

TEST(Ledger, OnlySourceAccountsMayGoNegative) {
  EXPECT_TRUE(IsSourceAccount(ProgramSourceAccount("P-000001")));
  EXPECT_FALSE(IsSourceAccount(ProgramBudgetAccount("P-000001")));
  EXPECT_FALSE(IsSourceAccount(VoucherAccount("source")));
  EXPECT_FALSE(IsSourceAccount(HoldAccount("AL-1")));
}

// The verifier checks every entry's accounts with Names, without building
// the names: it must agree with Name exactly.
TEST(Ledger, AnAccountFormNamesOnlyItsOwnAccounts) {
  for (const AccountForm* form :
       {&kProgramSourceForm, &kProgramBudgetForm, &kVoucherForm, &kHoldForm,
        &kPayableForm, &kPaidForm}) {
    for (const char* id : {"", "AL-1", "P-000001"}) {
      EXPECT_TRUE(form->Names(form->Name(id), id)) << form->Name(id);
    }
  }
  EXPECT_EQ(HoldAccount("AL-1"), "hold/AL-1");
  EXPECT_EQ(PayableAccount("PR-1"), "provider/PR-1/payable");
  EXPECT_FALSE(kHoldForm.Names("hold/AL-12", "AL-1"));
  EXPECT_FALSE(kHoldForm.Names("hold/AL-1", "AL-12"));
  EXPECT_FALSE(kHoldForm.Names("hold/AL-2", "AL-1"));
  EXPECT_FALSE(kHoldForm.Names("held/AL-1", "AL-1"));
  EXPECT_FALSE(kVoucherForm.Names("voucher/", "CV-1"));
  EXPECT_FALSE(kPayableForm.Names("provider/PR-1/paid", "PR-1"));
  EXPECT_FALSE(kPayableForm.Names("provider/PR-1/pay4ble", "PR-1"));
  EXPECT_FALSE(kProgramSourceForm.Names("program/P-1/budget", "P-1"));
  EXPECT_FALSE(kProgramBudgetForm.Names("program/P-2/budget", "P-1"));
}

}  // namespace
}  // namespace computevoucher::core
