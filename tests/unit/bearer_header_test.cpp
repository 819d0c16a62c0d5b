#include <gtest/gtest.h>

#include "http/bearer_header.hpp"

using chat::http::BearerHeader;
using chat::http::read_bearer_header;

TEST(BearerHeader, SplitsOnAnyWhitespaceAsSimpleJwt) {
  for (const char* header : {"Bearer abc", "Bearer  abc", "Bearer\tabc", " Bearer \t abc \f"}) {
    const auto b = read_bearer_header(header);
    EXPECT_EQ(b.kind, BearerHeader::Kind::token) << header;
    EXPECT_EQ(b.token, "abc") << header;
  }
}

TEST(BearerHeader, AnotherSchemeIsNoCredentials) {
  for (const char* header :
       {"", "   ", "Basic dXNlcjpwYXNz", "bearer abc", "BEARER abc", "Bearerabc"}) {
    EXPECT_EQ(read_bearer_header(header).kind, BearerHeader::Kind::none) << header;
  }
}

TEST(BearerHeader, OtherThanOneValueIsMalformed) {
  for (const char* header : {"Bearer", "Bearer  ", "Bearer abc def", "Bearer\tabc\tdef"}) {
    EXPECT_EQ(read_bearer_header(header).kind, BearerHeader::Kind::malformed) << header;
  }
  EXPECT_EQ(chat::http::malformed_bearer_header().code, "bad_authorization_header");
}
