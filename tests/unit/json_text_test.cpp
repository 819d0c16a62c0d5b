#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include <string>

#include "common/json_text.hpp"

using namespace chat;

namespace {

std::string literal(std::string_view s) {
  std::string out;
  json_text::append_string(out, s);
  return out;
}

}  // namespace

// Every byte value, at every place in and around an 8-byte word, in valid UTF-8 text: the
// literal parses back to the text, and nothing that must be escaped is left raw.
TEST(JsonText, StringsRoundTripWhereverTheSpecialByteIs) {
  for (int b = 0; b < 0x80; ++b) {
    for (std::size_t at = 0; at < 20; ++at) {
      std::string s(20, 'x');
      s[at] = static_cast<char>(b);
      const auto out = literal(s);
      ASSERT_EQ(boost::json::parse(out).as_string(), s) << b << " at " << at;
      for (std::size_t i = 1; i + 1 < out.size(); ++i) {
        const auto c = static_cast<unsigned char>(out[i]);
        ASSERT_TRUE(c >= 0x20 && c != 0x7f) << b << " at " << at;
      }
    }
  }
  // Multi-byte UTF-8 after a plain run, inside a word and across words.
  for (const std::string s : {"caf\xc3\xa9", "12345678\xf0\x9f\x98\x80", "\xe2\x80\xa8 line",
                              "abcdefg\xd0\x96\"quoted\""}) {
    EXPECT_EQ(boost::json::parse(literal(s)).as_string(), s);
  }
  EXPECT_EQ(literal(""), R"("")");
  EXPECT_EQ(literal("plain text, longer than one word"), R"("plain text, longer than one word")");
  EXPECT_EQ(literal("tab\there"), R"("tab\there")");
  EXPECT_EQ(literal("del\x7f"), R"("del\u007f")");
}

TEST(JsonText, InvalidUtf8IsEscapedByteByByte) {
  EXPECT_EQ(literal("0123456789bad\xff"), R"("0123456789bad\u00ff")");
  // One bad byte anywhere makes every byte above 0x7f an escape, so the text stays JSON.
  const auto out = literal("caf\xc3\xa9 \xc3");
  EXPECT_EQ(out, R"("caf\u00c3\u00a9 \u00c3")");
  EXPECT_NO_THROW(boost::json::parse(out));
}

TEST(JsonText, ObjectsHaveTheirMembersInOrder) {
  std::string out;
  json_text::ObjectWriter w(out);
  w.number("id", -9'223'372'036'854'775'807 - 1);
  w.string("name", "a\"b");
  w.boolean("yes", true);
  w.boolean("no", false);
  w.null("none");
  w.timestamp("at", 1'704'110'400'123'456);
  w.timestamp("early", -1);
  const std::string long_key(70, 'k');  // past the buffer a key is written through
  w.number(long_key, 1);
  w.close();
  EXPECT_EQ(out, R"({"id":-9223372036854775808,"name":"a\"b","yes":true,"no":false,"none":null,)"
                 R"("at":"2024-01-01T12:00:00.123456Z","early":"1969-12-31T23:59:59.999999Z",")" +
                     long_key + R"(":1})");
  std::string empty;
  json_text::ObjectWriter(empty).close();
  EXPECT_EQ(empty, "{}");
}
