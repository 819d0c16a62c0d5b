#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>

#include <string>

#include "common/json_input.hpp"

namespace {

std::string read(std::string_view text) {
  boost::system::error_code ec;
  auto v = chat::parse_client_json(text, 32, ec);
  return ec ? "error" : boost::json::serialize(v);
}

}  // namespace

// Integers past 64 bits keep their digits, as Python's json and DRF's CharField keep them.
TEST(ClientJson, IntegersPast64BitsAreReadAsTheirDigits) {
  EXPECT_EQ(read(R"({"text":97125579521341690686996891164})"),
            R"({"text":"97125579521341690686996891164"})");
  EXPECT_EQ(read(R"({"a":[18446744073709551616,-9223372036854775809]})"),
            R"({"a":["18446744073709551616","-9223372036854775809"]})");
  // What Boost.JSON holds exactly stays a number.
  EXPECT_EQ(read(R"({"a":18446744073709551615,"b":-9223372036854775808,"c":12})"),
            R"({"a":18446744073709551615,"b":-9223372036854775808,"c":12})");
  // Fractions and exponents are doubles in Python too; digits inside strings are text.
  EXPECT_EQ(read(R"({"a":1.00000000000000000000001,"b":"123456789012345678901234"})"),
            R"({"a":1E0,"b":"123456789012345678901234"})");
  EXPECT_EQ(read(R"({"a":123456789012345678901234e0})").substr(0, 10), R"({"a":1.234)");
  // A string with escaped quotes does not end early.
  EXPECT_EQ(read(R"({"a\"":"\"123456789012345678901234\\",  "b":123456789012345678901234})"),
            R"({"a\"":"\"123456789012345678901234\\","b":"123456789012345678901234"})");
  // Not JSON before, not JSON after: a leading zero is not a number.
  EXPECT_EQ(read(R"({"a":0123456789012345678901234})"), "error");
  EXPECT_EQ(read(R"({"a":123456789012345678901234)"), "error");
  // Only where a value may stand: a number as a key stays the error it is.
  EXPECT_EQ(read(R"({123456789012345678901234:"x","b":1})"), "error");
  EXPECT_EQ(read(R"({"a":1,123456789012345678901234:"x"})"), "error");
  EXPECT_EQ(read(R"({"a":[1,{"b":123456789012345678901234}]})"),
            R"({"a":[1,{"b":"123456789012345678901234"}]})");
  // Python reads no integer of more than 4,300 digits; a float of as many is a float.
  EXPECT_EQ(read(R"({"a":1)" + std::string(4300, '0') + "}"), "error");
  EXPECT_EQ(read(R"({"a":1)" + std::string(4299, '0') + "}").substr(0, 6), R"({"a":")");
  EXPECT_EQ(read(R"({"a":1.)" + std::string(5000, '0') + "}"), R"({"a":1E0})");
  // The top level stays a number (no body is one).
  EXPECT_EQ(read("123456789012345678901234").substr(0, 5), "1.234");
}
