#include "config/dotenv.hpp"

#include <cctype>

namespace chat::config {
namespace {

std::string_view trim_ascii(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

bool valid_key(std::string_view key) {
  if (key.empty() || std::isdigit(static_cast<unsigned char>(key.front()))) return false;
  for (char c : key) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

// Reads a quoted value starting at text[pos] (the opening quote). Double quotes understand
// \n, \t, \", \\ escapes and may span lines; single quotes are literal.
bool read_quoted(std::string_view text, std::size_t& pos, std::string& out) {
  const char quote = text[pos++];
  while (pos < text.size()) {
    char c = text[pos++];
    if (c == quote) return true;
    if (quote == '"' && c == '\\' && pos < text.size()) {
      char e = text[pos++];
      switch (e) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        default:
          out += e;
          break;
      }
      continue;
    }
    out += c;
  }
  return false;
}

// As python-dotenv reads a file: a UTF-8 byte order mark (Notepad writes one) is not part
// of the first name, and CR LF, LF and a lone CR all end a line.
std::string normalized(std::string_view text) {
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\r') {
      out.push_back(text[i]);
    } else if (i + 1 == text.size() || text[i + 1] != '\n') {
      out.push_back('\n');
    }
  }
  return out;
}

DotenvResult parse_lines(std::string_view text) {
  DotenvResult result;
  std::size_t pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    ++line_no;
    std::size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = trim_ascii(text.substr(pos, eol - pos));
    const std::size_t line_start = pos;
    pos = eol + 1;
    if (line.empty() || line.front() == '#') continue;
    if (line.size() > 7 && line.substr(0, 6) == "export" && (line[6] == ' ' || line[6] == '\t')) {
      line = trim_ascii(line.substr(7));
    }
    const std::size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      result.errors.push_back("line " + std::to_string(line_no) + ": expected KEY=VALUE");
      continue;
    }
    const std::string key(trim_ascii(line.substr(0, eq)));
    if (!valid_key(key)) {
      result.errors.push_back("line " + std::to_string(line_no) + ": '" + key +
                              "' is not a valid variable name");
      continue;
    }
    std::string_view rest = line.substr(eq + 1);
    while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) rest.remove_prefix(1);
    std::string value;
    if (!rest.empty() && (rest.front() == '"' || rest.front() == '\'')) {
      // Quoted values may run past this line: continue reading from the original text.
      std::size_t qpos = static_cast<std::size_t>(rest.data() - text.data());
      if (!read_quoted(text, qpos, value)) {
        result.errors.push_back("line " + std::to_string(line_no) + ": unterminated quote");
        break;
      }
      for (std::size_t i = line_start; i < qpos; ++i) {
        if (text[i] == '\n') ++line_no;
      }
      eol = text.find('\n', qpos);
      pos = eol == std::string_view::npos ? text.size() : eol + 1;
    } else {
      // An unquoted value ends at a " #" comment.
      const std::size_t hash = rest.find(" #");
      value = std::string(trim_ascii(rest.substr(0, hash)));
    }
    result.values[key] = std::move(value);
  }
  return result;
}

}  // namespace

DotenvResult parse_dotenv(std::string_view text) {
  return parse_lines(normalized(text));
}

}  // namespace chat::config
