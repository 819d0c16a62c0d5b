#include <gtest/gtest.h>

#include "common/unicode.hpp"

using namespace chat;

TEST(Unicode, DecodesAndRejectsInvalidUtf8) {
  auto cps = unicode::decode("aЖ😀");
  ASSERT_TRUE(cps);
  EXPECT_EQ(*cps, (std::vector<char32_t>{U'a', U'Ж', U'😀'}));
  EXPECT_FALSE(unicode::decode("\xff"));
  EXPECT_FALSE(unicode::decode("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(unicode::decode("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(unicode::decode("\xf4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(unicode::decode("\xe2\x82"));          // truncated
  EXPECT_EQ(unicode::encode(*cps), "aЖ😀");
}

TEST(Unicode, ReplacesInvalidBytesAsPythonDoes) {
  // bytes.decode("utf-8", "replace"): one U+FFFD per maximal invalid subpart.
  EXPECT_EQ(unicode::replace_invalid("aЖ😀"), "aЖ😀");
  EXPECT_EQ(unicode::replace_invalid("\xff"), "\uFFFD");
  EXPECT_EQ(unicode::replace_invalid("\xff\xfe"), "\uFFFD\uFFFD");
  EXPECT_EQ(unicode::replace_invalid("x\xe2\x82"), "x\uFFFD");  // cut short: one
  EXPECT_EQ(unicode::replace_invalid("\xe2\x82y"), "\uFFFDy");
  EXPECT_EQ(unicode::replace_invalid("\xc3\x28"), "\uFFFD(");
  EXPECT_EQ(unicode::replace_invalid("\xe0\x80\x80"), "\uFFFD\uFFFD\uFFFD");  // overlong
  EXPECT_EQ(unicode::replace_invalid("\xed\xa0\x80"), "\uFFFD\uFFFD\uFFFD");  // surrogate
  EXPECT_EQ(unicode::replace_invalid("\xf4\x90\x80\x80"), "\uFFFD\uFFFD\uFFFD\uFFFD");
  EXPECT_EQ(unicode::replace_invalid("\xf0\x9f\x98"), "\uFFFD");  // an emoji cut short
  EXPECT_EQ(unicode::replace_invalid(std::string("a\0b", 3)), std::string("a\0b", 3));
}

TEST(Unicode, LongAsciiRunsAreCheckedWholeWhereverABadByteSits) {
  // Runs of ASCII are skipped eight bytes at a time: a byte that is not ASCII is found at
  // every offset of a word, and what follows it is still checked.
  for (std::size_t at = 0; at < 40; ++at) {
    std::string text(40, 'k');
    text[at] = '\xff';
    EXPECT_FALSE(unicode::is_valid_utf8(text)) << at;
    std::string replaced = text.substr(0, at) + "\uFFFD" + text.substr(at + 1);
    EXPECT_EQ(unicode::replace_invalid(text), replaced) << at;
    std::string good = text.substr(0, at) + "\xC3\xA9" + text.substr(at + 1);
    EXPECT_TRUE(unicode::is_valid_utf8(good)) << at;
    EXPECT_EQ(unicode::replace_invalid(good), good) << at;
    // A character cut short at the end of a long run, and a bad byte after a good one.
    EXPECT_FALSE(unicode::is_valid_utf8(good + "\xE2\x82")) << at;
    EXPECT_EQ(unicode::replace_invalid(good + std::string(9, 'z') + "\xE2\x82"),
              good + std::string(9, 'z') + "\uFFFD")
        << at;
  }
  EXPECT_TRUE(unicode::is_valid_utf8(std::string(1000, 'a')));
  EXPECT_EQ(unicode::replace_invalid(std::string(1000, 'a')), std::string(1000, 'a'));
}

TEST(Unicode, SplitsOnWhitespaceAsPythonDoes) {
  using Parts = std::vector<std::string_view>;
  EXPECT_EQ(unicode::split(""), Parts{});
  EXPECT_EQ(unicode::split(" \t\n "), Parts{});
  EXPECT_EQ(unicode::split("a"), Parts{"a"});
  EXPECT_EQ(unicode::split("  ann  bob\tcat "), (Parts{"ann", "bob", "cat"}));
  EXPECT_EQ(unicode::split("аня\u00a0боб\u3000x"),
            (Parts{"аня", "боб", "x"}));                     // no-break, ideographic
  EXPECT_EQ(unicode::split("a\u200bb"), Parts{"a\u200bb"});  // zero-width space is not whitespace
}

TEST(Unicode, LengthCountsCodePoints) {
  EXPECT_EQ(unicode::length("пароль12"), 8U);
  EXPECT_EQ(unicode::length(""), 0U);
}

TEST(Unicode, PrefixCountsCodePoints) {
  EXPECT_EQ(unicode::prefix("aжжж", 2), "aж");
  EXPECT_EQ(unicode::prefix("aжжж", 0), "");
  EXPECT_EQ(unicode::prefix("aжжж", 4), "aжжж");
  EXPECT_EQ(unicode::prefix("aжжж", 10), "aжжж");
  EXPECT_EQ(unicode::prefix("😀😀", 1), "😀");
  EXPECT_EQ(unicode::prefix("", 3), "");
}

TEST(Unicode, LowerCasesBeyondAscii) {
  EXPECT_EQ(unicode::to_lower("AnnЁЖИКΣ"), "annёжикσ");
  EXPECT_EQ(unicode::to_lower("already"), "already");
}

TEST(Unicode, TrimsUnicodeWhitespace) {
  EXPECT_EQ(unicode::trim("  x y \t\n"), "x y");
  EXPECT_EQ(unicode::trim("\u3000name\u2003"), "name");
  EXPECT_EQ(unicode::trim("   "), "");
  EXPECT_EQ(unicode::trim(""), "");
  // Python's str.strip() (DRF trims with it): no-break spaces and the C0/C1 separators too.
  EXPECT_EQ(unicode::trim("\u00a0hi\u00a0"), "hi");
  EXPECT_EQ(unicode::trim("\u2007\u202f\u0085\x1f\x1c"), "");
  EXPECT_EQ(unicode::trim("\u205f\u2028x\u2029\u1680"), "x");
  EXPECT_EQ(unicode::trim("\u00a0\u00e9t\u00e9 \u4e2d\u3000"), "\u00e9t\u00e9 \u4e2d");
  // Not whitespace to Python: zero-width space, BOM, U+180E.
  EXPECT_EQ(unicode::trim("\u200bx\ufeff"), "\u200bx\ufeff");
  EXPECT_EQ(unicode::trim("\u180e"), "\u180e");
  EXPECT_EQ(unicode::trim("\xff  "), "\xff  ");  // not UTF-8: left as it is
}

TEST(Unicode, DiacriticsAreFoldedLikeTheSearchIndex) {
  EXPECT_EQ(unicode::without_diacritics("Crème brûlée"), "Creme brulee");
  EXPECT_EQ(unicode::without_diacritics("Łódź, Škoda, Ærø"), "Lodz, Skoda, Ærø");
  EXPECT_EQ(unicode::without_diacritics("ёлка й Ёж"), "елка и Еж");
  EXPECT_EQ(unicode::without_diacritics("Привет, world"), "Привет, world");
  // The Cyrillic folds alone, byte for byte as SQLite's replace() makes them.
  EXPECT_EQ(unicode::search_folded_cyrillic("ёлка й Ёж Йод, crème"), "елка и Еж Иод, crème");
  EXPECT_EQ(unicode::search_folded_cyrillic("\xD1\x91\xD1"), "\xD0\xB5\xD1");  // cut short
  // After a long ASCII run (skipped eight bytes at a time), at any offset.
  for (std::size_t at = 0; at < 20; ++at) {
    const std::string ascii(at, 'x');
    EXPECT_EQ(unicode::search_folded_cyrillic(ascii + "\xD0\xB9" + ascii + "ё"),
              ascii + "и" + ascii + "е")
        << at;
  }
}
