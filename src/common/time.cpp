#include "common/time.hpp"

#include <cstdio>
#include <ctime>

namespace chat {

Micros now_micros() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

std::int64_t now_seconds() {
  return now_micros() / 1'000'000;
}

namespace {

// Days since 1970-01-01 to a proleptic Gregorian date (the civil-from-days algorithm).
void civil_from_days(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y = static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2 ? 1 : 0);
}

void put_digits(char* out, unsigned value, int width) {
  for (int i = width - 1; i >= 0; --i) {
    out[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
}

}  // namespace

// Every message, event and chat carries timestamps, so this is on the hot path of every
// answer: digits are written directly rather than through gmtime and printf.
void append_iso8601(std::string& out, Micros t) {
  std::int64_t seconds = t / 1'000'000;
  std::int64_t micros = t % 1'000'000;
  if (micros < 0) {
    micros += 1'000'000;
    --seconds;
  }
  std::int64_t days = seconds / 86400;
  std::int64_t rest = seconds % 86400;
  if (rest < 0) {
    rest += 86400;
    --days;
  }
  std::int64_t year = 0;
  unsigned month = 0;
  unsigned day = 0;
  civil_from_days(days, year, month, day);
  if (year < 0 || year > 9999) {
    // Outside four-digit years (never a real message): the slow, general way.
    std::time_t whole = static_cast<std::time_t>(seconds);
    std::tm tm{};
    gmtime_r(&whole, &tm);
    char buf[64];  // room for any year, so the output is never cut
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<long>(micros));
    out += buf;
    return;
  }
  const std::size_t at = out.size();
  out.resize(at + 27);  // 2024-01-01T12:00:00.123456Z
  char* p = out.data() + at;
  put_digits(p, static_cast<unsigned>(year), 4);
  p[4] = '-';
  put_digits(p + 5, month, 2);
  p[7] = '-';
  put_digits(p + 8, day, 2);
  p[10] = 'T';
  put_digits(p + 11, static_cast<unsigned>(rest / 3600), 2);
  p[13] = ':';
  put_digits(p + 14, static_cast<unsigned>(rest / 60 % 60), 2);
  p[16] = ':';
  put_digits(p + 17, static_cast<unsigned>(rest % 60), 2);
  p[19] = '.';
  put_digits(p + 20, static_cast<unsigned>(micros), 6);
  p[26] = 'Z';
}

std::string format_iso8601(Micros t) {
  std::string out;
  append_iso8601(out, t);
  return out;
}

}  // namespace chat
