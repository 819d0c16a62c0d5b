// FieldReader reads a field as DRF's field classes do, for both doors (a REST body and a
// socket event).
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include "common/serializer_fields.hpp"

namespace {

using chat::FieldErrors;
using chat::FieldReader;
namespace json = boost::json;

json::object body(const char* text) {
  return json::parse(text).as_object();
}

TEST(SerializerFields, ChoiceShowsAValueAsPythonsStrDoes) {
  // str() of a list is the repr() of its items: Python's quotes and escapes for what
  // str.isprintable() refuses, by the escape's size.
  auto b = body(R"({"type": ["a\u200bb", "\ud83d\ude00", "\udb40\udc01", "\u00ad", "\u0378",
                              "\ue000", "\u3000x", "it's", "q\"'", "tab\t"]})");
  FieldErrors errors;
  auto shown = FieldReader(b, errors).choice("type");
  ASSERT_TRUE(shown.has_value());
  EXPECT_EQ(*shown,
            "['a\\u200bb', '\xF0\x9F\x98\x80', '\\U000e0001', '\\xad', '\\u0378', '\\ue000', "
            "'\\u3000x', \"it's\", 'q\"\\'', 'tab\\t']");
  EXPECT_TRUE(errors.empty());
  // Not nested: str() of a str is the text itself.
  auto plain = body(R"({"type": "gro\u200bup"})");
  EXPECT_EQ(FieldReader(plain, errors).choice("type"), "gro\xE2\x80\x8Bup");
  auto other = body(R"({"type": {"k": [1, 2.5, true, null]}})");
  EXPECT_EQ(FieldReader(other, errors).choice("type"), "{'k': [1, 2.5, True, None]}");
}

TEST(SerializerFields, IntegerBooleanAndTextAsDrfReadsThem) {
  auto b = body(R"({"a": "7.0", "b": 7.0, "c": "+7", "d": 1.5, "e": "yes", "f": 0,
                    "g": 123, "h": "maybe"})");
  FieldErrors errors;
  FieldReader f(b, errors);
  EXPECT_EQ(f.integer("a"), 7);
  EXPECT_EQ(f.integer("b"), 7);
  EXPECT_EQ(f.integer("c"), 7);
  EXPECT_EQ(f.integer("d"), std::nullopt);
  EXPECT_EQ(f.boolean("e"), true);
  EXPECT_EQ(f.boolean("f"), false);
  EXPECT_EQ(f.string("g"), "123");
  EXPECT_EQ(f.boolean("h"), std::nullopt);
  EXPECT_EQ(f.integer("missing"), std::nullopt);
  EXPECT_EQ(f.integer("optional", false), std::nullopt);
  using Items = std::vector<std::pair<std::string, std::vector<std::string>>>;
  const Items expected{{"d", {"A valid integer is required."}},
                       {"h", {"Must be a valid boolean."}},
                       {"missing", {"This field is required."}}};
  EXPECT_EQ(errors.items(), expected);
}

}  // namespace
