// Parser for `.env` files as python-dotenv and Docker Compose read them: KEY=VALUE lines,
// `#` comments, an optional `export ` prefix, single- or double-quoted values.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace chat::config {

struct DotenvResult {
  std::map<std::string, std::string> values;
  std::vector<std::string> errors;  // "line 3: ..." for lines that are not KEY=VALUE
};

DotenvResult parse_dotenv(std::string_view text);

}  // namespace chat::config
