#include "proc_stats.hpp"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>

namespace chatbench {

ProcSample sample_process(pid_t pid) {
  ProcSample out;
  const std::string base = "/proc/" + std::to_string(pid);
  std::ifstream stat(base + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return out;
  // Fields after the command name, which is in parentheses and may hold spaces.
  const auto close = line.rfind(')');
  if (close == std::string::npos) return out;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  out.cpu_seconds = static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  std::ifstream status(base + "/status");
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) out.rss_kib = std::stol(line.substr(6));
    if (line.rfind("VmHWM:", 0) == 0) out.peak_rss_kib = std::stol(line.substr(6));
  }
  out.peak_rss_kib = std::max(out.peak_rss_kib, out.rss_kib);
  out.ok = true;
  return out;
}

long highest_rss(std::initializer_list<ProcSample> samples) {
  long most = 0;
  for (const auto& s : samples) most = std::max({most, s.rss_kib, s.peak_rss_kib});
  return most;
}

}  // namespace chatbench
