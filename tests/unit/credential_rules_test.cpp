#include <gtest/gtest.h>

#include "auth/credential_rules.hpp"

using namespace chat::auth;

TEST(CredentialRules, Usernames) {
  EXPECT_TRUE(username_problems("ann").empty());
  EXPECT_TRUE(username_problems("a.b+c@d-e_f").empty());
  EXPECT_TRUE(username_problems("Ёжик").empty());
  EXPECT_TRUE(username_problems("١٢٣").empty());  // Arabic-Indic digits are digits
  // Python's \w: letters (category L) and anything with a numeric value.
  EXPECT_TRUE(username_problems("x²").empty());
  EXPECT_TRUE(username_problems("Ⅻ½\u0BF0\u09F4").empty());
  EXPECT_TRUE(username_problems("ʰ").empty());          // a modifier letter (Lm)
  EXPECT_FALSE(username_problems("a\u0301").empty());   // a combining accent (Mn) is not \w
  EXPECT_FALSE(username_problems("a\u00A0b").empty());  // nor a no-break space
  EXPECT_FALSE(username_problems("").empty());
  EXPECT_FALSE(username_problems("with space").empty());
  EXPECT_FALSE(username_problems("emoji😀").empty());
  EXPECT_FALSE(username_problems("a/b").empty());
  EXPECT_FALSE(username_problems("\xff").empty());
}

TEST(CredentialRules, UsernameKeyFoldsCase) {
  EXPECT_EQ(username_key("Ann"), username_key("aNN"));
  EXPECT_EQ(username_key("АНЯ"), username_key("аня"));
  EXPECT_NE(username_key("ann"), username_key("anne"));
}

// Two names are one when their upper cases are (Django's `iexact`): a Greek word's final
// sigma and a dotless i have one upper case with their plain forms, though not one lower.
TEST(CredentialRules, UsernameKeyComparesUpperCases) {
  EXPECT_EQ(username_key("\u039f\u0394\u039f\u03a3"), "\u03bf\u03b4\u03bf\u03c3");  // ΟΔΟΣ
  EXPECT_EQ(username_key("\u03bf\u03b4\u03bf\u03c2"), "\u03bf\u03b4\u03bf\u03c3");  // οδος
  EXPECT_EQ(username_key("\u03bf\u03b4\u03bf\u03c3"), "\u03bf\u03b4\u03bf\u03c3");  // οδοσ
  EXPECT_EQ(username_key("k\u0131r"), username_key("KIR"));                         // kır
  EXPECT_EQ(username_key("\u1c82n"), username_key("\u043en"));  // rounded o is an o
  // No upper case of its own: stays as it is, and apart from "ss".
  EXPECT_EQ(username_key("stra\u00dfe"), "stra\u00dfe");
  EXPECT_NE(username_key("stra\u00dfe"), username_key("STRASSE"));
}

TEST(CredentialRules, NewUsernamesAreNfkcAsDjangoCreatesThem) {
  auto normal = [](const char* raw) {
    auto n = new_username(raw);
    EXPECT_TRUE(n.problems.empty()) << raw;
    return n.name;
  };
  EXPECT_EQ(normal("ann"), "ann");
  EXPECT_EQ(normal("Ёжик"), "Ёжик");
  EXPECT_EQ(normal("ｒｏｏｔ"), "root");  // fullwidth letters
  EXPECT_EQ(normal("ﬁle"), "file");       // a ligature
  EXPECT_EQ(normal("\u212B"), "\u00C5");  // ANGSTROM SIGN -> A WITH RING
  EXPECT_EQ(normal("ａｎｎ２"), "ann2");  // fullwidth digits too
  EXPECT_EQ(username_key(normal("ＲＯＯＴ")), username_key("root"));
  // Refused as given, as Django's validator sees the name before normalising it.
  EXPECT_FALSE(new_username("＠bob").problems.empty());  // a fullwidth @ is not \w
  EXPECT_FALSE(new_username("").problems.empty());
  // A normal form outside the rules: a ligature that expands to words with spaces, and one
  // past 150 characters (75 "ﬃ" are 225).
  EXPECT_FALSE(new_username("\uFDFA").problems.empty());
  std::string ligatures;
  for (int i = 0; i < 75; ++i) ligatures += "ﬃ";
  auto long_one = new_username(ligatures);
  ASSERT_EQ(long_one.problems.size(), 1U);
  EXPECT_EQ(long_one.problems[0], "Ensure this field has no more than 150 characters.");
}

TEST(CredentialRules, Emails) {
  const std::string long_local = std::string(65, 'a') + "@example.com";  // no local limit
  for (const std::string good :
       {"a@example.com", "first.last+tag@sub.example.co.uk", "x@пример.рф",
        "\"quoted\\ local\"@example.com", "\"\"@example.com", "\"a\\\"b\"@example.com",
        "a@[127.0.0.1]", "a@[::1]", "a@[::ffff:1.2.3.4]", "o'brien@example.ie",
        "ſ@example.com",  // [A-Z] under Python's re.IGNORECASE
        "a@localhost",    // Django's domain_allowlist
        long_local.c_str()}) {
    EXPECT_TRUE(email_problems(good).empty()) << good;
  }
  for (const char* bad :
       {"",
        "plain",
        "@example.com",
        "a@",
        "a@@example.com",
        "a..b@example.com",
        ".a@example.com",
        "a@LOCALHOST",
        "a@localhost.",
        "a@local",
        "a@example.c",
        "a@-example.com",
        "a@example..com",
        "a@example.123",
        "a b@example.com",
        "\"quoted local\"@example.com",  // a space only after a backslash
        "\"a\"b\"@example.com",
        "\"a\\\"@example.com",
        "\"é\"@example.com",
        "é@example.com",
        "a@[1.2.3.999]",
        "a@[1.2.3]",
        "a@[01.2.3.4]",
        "a@[]",
        "a@[1.2.3.4",
        "a@[0000:0000:0000:0000:0000:ffff:255.255.255.255]"}) {  // IPv6 over 39 characters
    EXPECT_FALSE(email_problems(bad).empty()) << bad;
  }
  EXPECT_FALSE(email_problems(std::string(250, 'a') + "@example.com").empty());
}

TEST(CredentialRules, EmailsAreNormalisedAsDjangosCreateUser) {
  EXPECT_EQ(normalize_email("Foo.Bar@EXAMPLE.Com"), "Foo.Bar@example.com");
  EXPECT_EQ(normalize_email("X@ПРИМЕР.РФ"), "X@пример.рф");
  EXPECT_EQ(normalize_email("a\"@\"B@C.D"), "a\"@\"B@c.d");  // the last @ splits
}

TEST(CredentialRules, Passwords) {
  EXPECT_TRUE(password_problems("correct horse", "ann").empty());
  EXPECT_EQ(password_problems("short", "ann").size(), 1U);
  EXPECT_EQ(password_problems("12345678", "ann"),
            std::vector<std::string>{"This password is entirely numeric."});
  // Python's str.isdigit(): digits of any script, and digits such as superscripts.
  EXPECT_EQ(password_problems("١٢٣٤٥٦٧٨", "ann"),
            std::vector<std::string>{"This password is entirely numeric."});
  EXPECT_EQ(password_problems("²²²²²²²²", "ann"),
            std::vector<std::string>{"This password is entirely numeric."});
  EXPECT_TRUE(password_problems("ⅫⅫⅫⅫⅫⅫⅫⅫ", "ann").empty());  // numeric, not digits
  EXPECT_TRUE(password_problems("1234567x", "ann").empty());
  EXPECT_EQ(password_problems("123", "ann").size(), 2U);
  EXPECT_EQ(password_problems("AnnaKarenina", "annakarenina"),
            std::vector<std::string>{"The password is too similar to the username."});
  EXPECT_TRUE(password_problems("пароль12", "ann").empty());  // 8 characters, 14 bytes
  // A new name as typed and as stored: equal to either is too similar, reported once.
  EXPECT_EQ(password_problems("rootroot", {"ｒｏｏｔｒｏｏｔ", "rootroot"}),
            std::vector<std::string>{"The password is too similar to the username."});
  EXPECT_EQ(password_problems("ｒｏｏｔｒｏｏｔ", {"ｒｏｏｔｒｏｏｔ", "rootroot"}),
            std::vector<std::string>{"The password is too similar to the username."});
  EXPECT_TRUE(password_problems("rootroot", {"ann", ""}).empty());
}
