// Numbers as Python reads and writes them (checked against CPython 3.11).
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <limits>

#include "common/python_number.hpp"

TEST(PythonNumber, FloatTextMatchesPythonStr) {
  const std::pair<double, const char*> cases[] = {{5.0, "5.0"},
                                                  {0.5, "0.5"},
                                                  {0.0001, "0.0001"},
                                                  {0.00001, "1e-05"},
                                                  {1.5e-7, "1.5e-07"},
                                                  {123.5, "123.5"},
                                                  {1e16, "1e+16"},
                                                  {1.5e16, "1.5e+16"},
                                                  {9999999999999998.0, "9999999999999998.0"},
                                                  {-3.25, "-3.25"},
                                                  {-0.0, "-0.0"},
                                                  {0.0, "0.0"},
                                                  {1e22, "1e+22"},
                                                  {2.5e-5, "2.5e-05"},
                                                  {100.0, "100.0"},
                                                  {1e15, "1000000000000000.0"},
                                                  {123456789.125, "123456789.125"},
                                                  {0.1 + 0.2, "0.30000000000000004"},
                                                  {1e308, "1e+308"},
                                                  {5e-324, "5e-324"}};
  for (const auto& [value, text] : cases) EXPECT_EQ(chat::python_float(value), text) << text;
  EXPECT_EQ(chat::python_float(std::numeric_limits<double>::infinity()), "inf");
  EXPECT_EQ(chat::python_float(-std::numeric_limits<double>::infinity()), "-inf");
}

TEST(PythonNumber, IntFromTextAsPythonInt) {
  EXPECT_EQ(chat::python_int(" 42 "), 42);
  EXPECT_EQ(chat::python_int("+7"), 7);
  EXPECT_EQ(chat::python_int("-1_000"), -1000);
  EXPECT_EQ(chat::python_int("99999999999999999999999"), INT64_MAX);  // saturates
  // Decimal digits of any script, as int() reads them: "١٢" (Arabic-Indic) is 12, and
  // scripts may mix.
  EXPECT_EQ(chat::python_int("\u0661\u0662"), 12);
  EXPECT_EQ(chat::python_int("\u0967_0\uFF15"), 105);  // Devanagari 1, 0, fullwidth 5
  // Digits that are not decimal (superscripts, Roman numerals) are not read, as int()
  // refuses them.
  for (const char* bad : {"\u00B2", "\u2167", "\u2460"}) EXPECT_FALSE(chat::python_int(bad)) << bad;
  for (const char* bad : {"", " ", "4x2", "1__0", "_1", "1_", "1.0", "0x10", "+", "--1", "\xff"}) {
    EXPECT_FALSE(chat::python_int(bad)) << bad;
  }
}

TEST(PythonNumber, AnIntegerFieldReadsAsInBothDoors) {
  auto read = [](const char* json) { return chat::integer_field(boost::json::parse(json)); };
  EXPECT_EQ(read("42"), 42);
  EXPECT_EQ(read("0"), 0);
  EXPECT_EQ(read("-3"), -3);  // the range is the caller's rule
  EXPECT_EQ(read("5.0"), 5);
  EXPECT_EQ(read(R"(" 7 ")"), 7);
  // DRF cuts a trailing ".0..." from str(data), then Python's int() reads the rest.
  EXPECT_EQ(read(R"("7.0")"), 7);
  EXPECT_EQ(read(R"("7.")"), 7);
  EXPECT_EQ(read(R"(" 7.000 ")"), 7);
  EXPECT_EQ(read(R"("+7")"), 7);
  EXPECT_EQ(read(R"("1_000")"), 1000);
  EXPECT_EQ(read("1e3"), 1000);  // str(1000.0) is "1000.0"
  EXPECT_EQ(read("-0.0"), 0);
  EXPECT_FALSE(read(R"("7.5")"));
  EXPECT_FALSE(read(R"("7.0.0")"));
  EXPECT_FALSE(read(R"("7.0x")"));
  EXPECT_FALSE(read(R"(".")"));
  EXPECT_FALSE(read("1e16"));  // str() gives "1e+16"
  EXPECT_FALSE(read("1.5"));
  EXPECT_FALSE(read("18446744073709551615"));  // past int64
  EXPECT_FALSE(read(R"("99999999999999999999")"));
  EXPECT_FALSE(read(R"("abc")"));
  EXPECT_FALSE(read(R"("")"));
  EXPECT_FALSE(read("true"));
  EXPECT_FALSE(read("null"));
  EXPECT_FALSE(read("[1]"));
}
