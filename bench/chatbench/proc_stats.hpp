// What a process has used so far, from /proc: CPU seconds and resident memory.
#pragma once

#include <sys/types.h>

namespace chatbench {

struct ProcSample {
  double cpu_seconds = 0;  // user + system
  long rss_kib = 0;        // resident now
  long peak_rss_kib = 0;   // VmHWM: the most it was resident
  bool ok = false;         // false: no such process (or /proc unreadable)
};

ProcSample sample_process(pid_t pid);

}  // namespace chatbench
