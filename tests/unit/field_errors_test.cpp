// FieldErrors carrying a body that could not be read, for the endpoints that report it
// only after their object checks (authed_body_after_lookup).
#include <gtest/gtest.h>

#include "common/error.hpp"

namespace chat {
namespace {

TEST(FieldErrors, AnUnreadableBodyAnswersInPlaceOfTheFields) {
  FieldErrors errors;
  errors.set_unreadable_body("Unsupported media type \"text/plain\" in request.",
                             "unsupported_media_type");
  EXPECT_FALSE(errors.empty());
  errors.add("name", "This field is required.");  // what a service adds for the empty body
  const Error e = Error::validation(errors);
  EXPECT_EQ(e.kind, ErrorKind::bad_request);
  EXPECT_EQ(e.detail, "Unsupported media type \"text/plain\" in request.");
  EXPECT_EQ(e.code, "unsupported_media_type");
  EXPECT_TRUE(e.fields.items().empty());
}

TEST(FieldErrors, ASealedListKeepsOnlyWhatItHad) {
  FieldErrors errors;
  errors.add("non_field_errors", "Invalid data. Expected a dictionary, but got list.");
  errors.seal();
  errors.add("name", "This field is required.");
  errors.add("non_field_errors", "another");
  const Error e = Error::validation(errors);
  EXPECT_EQ(e.kind, ErrorKind::validation);
  ASSERT_EQ(e.fields.items().size(), 1U);
  EXPECT_EQ(e.fields.items()[0].first, "non_field_errors");
  EXPECT_EQ(e.fields.items()[0].second.size(), 1U);
}

TEST(FieldErrors, OrdinaryErrorsStayFieldErrors) {
  FieldErrors errors;
  EXPECT_TRUE(errors.empty());
  errors.add("role", "\"boss\" is not a valid choice.");
  errors.add("role", "second");
  const Error e = Error::validation(errors);
  EXPECT_EQ(e.kind, ErrorKind::validation);
  EXPECT_TRUE(e.detail.empty());
  ASSERT_EQ(e.fields.items().size(), 1U);
  EXPECT_EQ(e.fields.items()[0].second.size(), 2U);
}

}  // namespace
}  // namespace chat
