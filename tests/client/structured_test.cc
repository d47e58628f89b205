#include "client/internal/structured.h"

#include <string>

#include "computevoucher/v1/enterprise.pb.h"
#include "computevoucher/v1/types.pb.h"
#include "gtest/gtest.h"

namespace computevoucher::client {
namespace {

namespace pb = ::computevoucher::v1;

pb::QuoteResponse Quote() {
  pb::QuoteResponse q;
  q.mutable_amounts()->set_cost_fen(9007199254740993);  // 2^53 + 1
  q.mutable_amounts()->set_subsidy_fen(-5);
  q.set_price_fen_per_gpu_hour(1500);
  q.set_hardware_class(pb::HARDWARE_CLASS_DOMESTIC);
  pb::VoucherOption* v = q.add_vouchers();
  v->set_voucher_id("CV-2025-000001");
  v->set_available_fen(100);
  v->set_sufficient(true);
  q.add_vouchers()->set_voucher_id("CV-2025-000002");
  q.set_gpu_model("910B");
  return q;
}

TEST(StructuredTest, JsonHasNumbersForInt64AndEveryScalarField) {
  EXPECT_EQ(ToJson(Quote(), true),
            "{\"amounts\":{\"cost_fen\":9007199254740993,\"subsidy_fen\":-5,"
            "\"self_pay_fen\":0},\"price_fen_per_gpu_hour\":1500,"
            "\"ratio_bp\":0,\"hardware_class\":\"HARDWARE_CLASS_DOMESTIC\","
            "\"vouchers\":[{\"voucher_id\":\"CV-2025-000001\","
            "\"available_fen\":100,\"sufficient\":true},{\"voucher_id\":"
            "\"CV-2025-000002\",\"available_fen\":0,\"sufficient\":false}],"
            "\"capacity_available\":false,\"cluster_id\":\"\","
            "\"gpu_model\":\"910B\"}");
}

TEST(StructuredTest, JsonIndentsByTwoAndShowsEmptyCollections) {
  pb::ListVouchersResponse empty;
  EXPECT_EQ(ToJson(empty, false),
            "{\n  \"vouchers\": [],\n  \"next_page_token\": \"\"\n}");
  pb::Amounts amounts;
  amounts.set_cost_fen(7);
  EXPECT_EQ(ToJson(amounts, false),
            "{\n  \"cost_fen\": 7,\n  \"subsidy_fen\": 0,\n"
            "  \"self_pay_fen\": 0\n}");
}

pb::JournalEntry Entry() {
  pb::JournalEntry e;
  e.set_sequence(3);
  e.set_kind(pb::ENTRY_KIND_CHARGE);
  e.set_amount_fen(12);
  e.set_prev_hash(std::string("\x00\x01\xab\xff", 4));
  e.set_memo("a \"quoted\" line\nand a tab\t, 中文, \x01");
  e.mutable_time()->set_seconds(1764950400);  // 2025-12-05T16:00:00Z
  e.mutable_time()->set_nanos(500000000);
  return e;
}

TEST(StructuredTest, BytesAreHexTimesRfc3339StringsEscaped) {
  const std::string json = ToJson(Entry(), true);
  EXPECT_NE(json.find("\"prev_hash\":\"0001abff\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"hash\":\"\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"time\":\"2025-12-05T16:00:00.500Z\""),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("\"memo\":\"a \\\"quoted\\\" line\\nand a tab\\t, "
                      "中文, \\u0001\""),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("\"kind\":\"ENTRY_KIND_CHARGE\""), std::string::npos);
}

TEST(StructuredTest, CharactersYamlReadersRefuseOrFoldAreEscaped) {
  pb::Offer offer;
  // U+0085 (NEL), U+009F, U+2028, U+2029, U+FEFF, then U+00A0 and U+2027,
  // which stay as they are.
  offer.set_region(
      "a\xc2\x85"
      "b\xc2\x9f \xe2\x80\xa8 \xe2\x80\xa9\xef\xbb\xbf"
      "\xc2\xa0\xe2\x80\xa7");
  const std::string escaped =
      "\"a\\u0085b\\u009f \\u2028 \\u2029\\ufeff\xc2\xa0\xe2\x80\xa7\"";
  EXPECT_NE(ToJson(offer, true).find("\"region\":" + escaped),
            std::string::npos)
      << ToJson(offer, true);
  EXPECT_NE(ToYaml(offer).find("region: " + escaped + "\n"), std::string::npos)
      << ToYaml(offer);
}

TEST(StructuredTest, YamlBlocksListsAtTheKeysIndentQuotedWhenAmbiguous) {
  EXPECT_EQ(ToYaml(Quote()),
            "amounts:\n"
            "  cost_fen: 9007199254740993\n"
            "  subsidy_fen: -5\n"
            "  self_pay_fen: 0\n"
            "price_fen_per_gpu_hour: 1500\n"
            "ratio_bp: 0\n"
            "hardware_class: HARDWARE_CLASS_DOMESTIC\n"
            "vouchers:\n"
            "- voucher_id: CV-2025-000001\n"
            "  available_fen: 100\n"
            "  sufficient: true\n"
            "- voucher_id: CV-2025-000002\n"
            "  available_fen: 0\n"
            "  sufficient: false\n"
            "capacity_available: false\n"
            "cluster_id: \"\"\n"
            "gpu_model: \"910B\"\n");
}

TEST(StructuredTest, YamlQuotesWordsYamlWouldReadAsOtherTypes) {
  pb::Token token;
  for (const char* word : {"no", "Yes", "off", "null", "NULL", "y"}) {
    token.set_token_id(word);
    EXPECT_NE(ToYaml(token).find(std::string("token_id: \"") + word + "\""),
              std::string::npos)
        << word;
  }
  token.set_token_id("TK-000001");
  EXPECT_NE(ToYaml(token).find("token_id: TK-000001\n"), std::string::npos);
  token.set_token_id("a: b #c");
  EXPECT_NE(ToYaml(token).find("token_id: \"a: b #c\"\n"), std::string::npos);
  EXPECT_EQ(ToYaml(pb::Amounts()),
            "cost_fen: 0\nsubsidy_fen: 0\nself_pay_fen: 0\n");
  EXPECT_EQ(ToYaml(pb::ListVouchersResponse()),
            "vouchers: []\nnext_page_token: \"\"\n");
}

}  // namespace
}  // namespace computevoucher::client
