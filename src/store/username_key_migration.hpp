#pragma once

// A migration both stores run: usernames compared by the lower case of their upper case
// (auth::username_key, unicode::caseless_key) instead of their lower case. Only the code
// points whose two lower cases differ change a stored key ("ς" -> "σ", "ı" -> "i", the
// Cyrillic variants U+1C80-U+1C88, and a few that NFKC leaves out of a name already; not
// U+0345 and U+1FBE, which no name holds: combining marks are refused, and NFKC makes
// U+1FBE the plain ι).
// Two users whose keys would become one (registered before, as "οδυσσευς" and "ΟΔΥΣΣΕΥΣ")
// cannot both hold it: the earlier of them takes it, unless a user holds it already, and
// the rest keep their keys (README: Upgrades).

namespace chat::store {

inline constexpr const char* kUsernameKeysByUpperCase = R"sql(
WITH folded AS (
  SELECT id, username_key AS old_key,
    replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(
    replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(
      username_key, 'µ', 'μ'), 'ı', 'i'), 'ſ', 's'), 'ς', 'σ'), 'ϐ', 'β'), 'ϑ', 'θ'),
      'ϕ', 'φ'), 'ϖ', 'π'), 'ϰ', 'κ'), 'ϱ', 'ρ'), 'ϵ', 'ε'), 'ᲀ', 'в'), 'ᲁ', 'д'),
      'ᲂ', 'о'), 'ᲃ', 'с'), 'ᲄ', 'т'), 'ᲅ', 'т'), 'ᲆ', 'ъ'), 'ᲇ', 'ѣ'), 'ᲈ', 'ꙋ'),
      'ẛ', 'ṡ') AS new_key
  FROM users
),
chosen AS (
  SELECT min(f.id) AS id, f.new_key FROM folded f
  WHERE f.new_key <> f.old_key
    AND NOT EXISTS (SELECT 1 FROM users o WHERE o.username_key = f.new_key)
  GROUP BY f.new_key
)
UPDATE users SET username_key = chosen.new_key FROM chosen WHERE users.id = chosen.id;
)sql";

}  // namespace chat::store
