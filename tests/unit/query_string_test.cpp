// Query strings and url-encoded bodies as Django's QueryDict reads them (Python's
// parse_qsl with blank values kept, unquote with errors="replace"), and request targets
// with the characters Daphne takes escaped for a strict URL parser.
#include <gtest/gtest.h>

#include "http/query_string.hpp"

namespace {

using chat::http::escape_lenient_target;
using chat::http::parse_query_pairs;
using chat::http::QueryPairs;

TEST(QueryString, PairsAreSplitAsParseQslSplitsThem) {
  EXPECT_EQ(parse_query_pairs("a=1&b=&c&&d=x=y&"),
            (QueryPairs{{"a", "1"}, {"b", ""}, {"c", ""}, {"d", "x=y"}}));
  EXPECT_EQ(parse_query_pairs("a=1;b=2"), (QueryPairs{{"a", "1;b=2"}}));  // ';' splits nothing
  EXPECT_EQ(parse_query_pairs("=v"), (QueryPairs{{"", "v"}}));
  EXPECT_TRUE(parse_query_pairs("").empty());
  EXPECT_TRUE(parse_query_pairs("&&").empty());
}

TEST(QueryString, ValuesAreUnquotedAsUnquotePlusDoes) {
  EXPECT_EQ(parse_query_pairs("k+1=a+b%20c%2B")[0],
            (std::pair<std::string, std::string>{"k 1", "a b c+"}));
  EXPECT_EQ(parse_query_pairs("q=%e2%82%ac")[0].second, "\xE2\x82\xAC");
  // A '%' that starts no escape is itself.
  EXPECT_EQ(parse_query_pairs("q=50%")[0].second, "50%");
  EXPECT_EQ(parse_query_pairs("q=%zz%4")[0].second, "%zz%4");
  // Escapes that are not UTF-8: one U+FFFD per maximal invalid part, the rest kept.
  EXPECT_EQ(parse_query_pairs("q=%ff")[0].second, "\xEF\xBF\xBD");
  EXPECT_EQ(parse_query_pairs("q=a%e2%82b")[0].second,
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(parse_query_pairs("q=%C3%28")[0].second, "\xEF\xBF\xBD(");
  // Text sent as it is, UTF-8 or not (a body that is not UTF-8 is read as Latin-1).
  EXPECT_EQ(parse_query_pairs("q=Caf\xC3\xA9 [1]")[0].second, "Caf\xC3\xA9 [1]");
  EXPECT_EQ(parse_query_pairs("q=caf\xE9")[0].second, "caf\xC3\xA9");
  EXPECT_EQ(parse_query_pairs("q=%00")[0].second, std::string("\0", 1));
}

TEST(QueryString, LongValuesAreUnquotedWhereverTheirEscapesSit) {
  // A long value (a token) is copied in runs between escapes and '+': each kind is found
  // at any offset, as is a byte that is not UTF-8.
  const std::string run(30, 't');
  for (std::size_t at = 0; at <= run.size(); ++at) {
    const std::string head = run.substr(0, at);
    const std::string tail = run.substr(at);
    EXPECT_EQ(parse_query_pairs("token=" + head + "%2B" + tail)[0].second, head + "+" + tail);
    EXPECT_EQ(parse_query_pairs("token=" + head + "+" + tail)[0].second, head + " " + tail);
    EXPECT_EQ(parse_query_pairs("token=" + head + "%" + tail)[0].second, head + "%" + tail);
    EXPECT_EQ(parse_query_pairs("token=" + head + "%FF" + tail)[0].second,
              head + "\xEF\xBF\xBD" + tail);
    EXPECT_EQ(escape_lenient_target("/ws/?token=" + head + "|" + tail),
              "/ws/?token=" + head + "%7C" + tail);
    EXPECT_EQ(escape_lenient_target("/ws/?token=" + head + "%41" + tail + "%"),
              "/ws/?token=" + head + "%41" + tail + "%25");
  }
}

TEST(QueryString, CharactersDaphneTakesAreEscapedFromThePathOn) {
  EXPECT_EQ(escape_lenient_target("/s/?q=[a]|{b}^`\"<>\\#"),
            "/s/?q=%5Ba%5D%7C%7Bb%7D%5E%60%22%3C%3E%5C%23");
  EXPECT_EQ(escape_lenient_target("/s/?q=50%&r=%41%zz%4"), "/s/?q=50%25&r=%41%25zz%254");
  // The authority of an absolute form keeps its brackets.
  EXPECT_EQ(escape_lenient_target("http://[::1]:8000/a?b=[c]"), "http://[::1]:8000/a?b=%5Bc%5D");
  EXPECT_EQ(escape_lenient_target("http://[::1]:8000"), "http://[::1]:8000");
  // What Daphne refuses is left for the parser to refuse.
  EXPECT_EQ(escape_lenient_target("/a b"), "/a b");
  EXPECT_EQ(escape_lenient_target("/\xC3\xA9"), "/\xC3\xA9");
  EXPECT_EQ(escape_lenient_target("/ok?x=1"), "/ok?x=1");
}

}  // namespace
