// Form bodies as Django's QueryDict holds them: the last value of each key, every value
// beside it, file parts as values no field accepts, and malformed multipart bodies refused.
#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>

#include "http/form_body.hpp"

namespace {

namespace json = boost::json;
using chat::FormValues;
using chat::http::parse_multipart_form;
using chat::http::parse_urlencoded_form;

json::array all_of(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(FormValues::key(key));
  return v != nullptr ? v->as_array() : json::array{};
}

TEST(FormBody, UrlencodedKeepsTheLastValueAndEveryValue) {
  auto form = parse_urlencoded_form("a=1&b=x+y%2B&a=2&c=");
  ASSERT_TRUE(form);
  EXPECT_TRUE(FormValues::is_form(*form));
  EXPECT_EQ(form->at("a"), "2");
  EXPECT_EQ(form->at("b"), "x y+");
  EXPECT_EQ(form->at("c"), "");
  EXPECT_EQ(all_of(*form, "a"), (json::array{"1", "2"}));
  // As QueryDict reads them: an escape that is not UTF-8 is replaced, a body that is not
  // UTF-8 is Latin-1.
  EXPECT_EQ(parse_urlencoded_form("a=%ff")->at("a"), "\xEF\xBF\xBD");
  EXPECT_EQ(parse_urlencoded_form("a=caf\xE9")->at("a"), "caf\xC3\xA9");
  EXPECT_TRUE(FormValues::is_form(*parse_urlencoded_form("")));
}

TEST(FormBody, MultipartFieldsFilesAndPreamble) {
  const std::string body =
      "a preamble is ignored\r\n"
      "--b0und\"ary\r\n"
      "Content-Disposition: form-data; name=\"ids\"\r\n\r\n"
      "1\r\n"
      "--b0und\"ary\r\n"
      "content-disposition: form-data; name=ids\r\n"
      "Content-Type: text/plain\r\n\r\n"
      "2\r\n"
      "--b0und\"ary\r\n"
      "Content-Disposition: form-data; name=\"text\"\r\n\r\n"
      "two\r\nlines --b0und\r\n"
      "--b0und\"ary\r\n"
      "Content-Disposition: form-data; name=\"upload\"; filename=\"a;b.txt\"\r\n\r\n"
      "\x01\x02\r\n"
      "--b0und\"ary\r\n"
      "Content-Disposition: form-data\r\n\r\n"
      "no name: skipped\r\n"
      "--b0und\"ary--\r\n";
  auto form =
      parse_multipart_form(body, R"(multipart/form-data; charset=utf-8; boundary="b0und\"ary")");
  ASSERT_TRUE(form) << form.error().detail;
  EXPECT_TRUE(FormValues::is_form(*form));
  EXPECT_EQ(form->at("ids"), "2");
  EXPECT_EQ(all_of(*form, "ids"), (json::array{"1", "2"}));
  EXPECT_EQ(form->at("text"), "two\r\nlines --b0und");
  EXPECT_TRUE(form->at("upload").is_object());
  EXPECT_EQ(form->size(), 7U);  // the form mark, and three keys with their lists
}

TEST(FormBody, MalformedMultipartIsRefused) {
  const std::string part = "--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--x--";
  EXPECT_TRUE(parse_multipart_form(part, "multipart/form-data; boundary=x"));
  for (const char* type : {"multipart/form-data",
                           "multipart/form-data; boundary=", "multipart/form-data; boundary=\"x"}) {
    auto r = parse_multipart_form(part, type);
    ASSERT_FALSE(r) << type;
    EXPECT_NE(r.error().detail.find("Multipart form parse error - "), std::string::npos);
  }
  for (const char* bad :
       {"", "--x", "--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1",
        "--xjunk\r\n\r\n1\r\n--x--",
        "--x\r\nContent-Disposition: form-data; name=\"a\"\r\n1\r\n--x--",
        "--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n\xff\r\n--x--"}) {
    EXPECT_FALSE(parse_multipart_form(bad, "multipart/form-data; boundary=x")) << bad;
  }
}

}  // namespace
