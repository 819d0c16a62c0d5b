// What a process has used so far, from /proc: CPU seconds and resident memory.
#pragma once

#include <sys/types.h>

#include <initializer_list>

namespace chatbench {

struct ProcSample {
  double cpu_seconds = 0;  // user + system
  long rss_kib = 0;        // resident now
  // VmHWM, or VmRSS if higher. The kernel raises VmHWM only now and then (when memory is
  // unmapped), so a later sample's VmHWM can be below an earlier sample's VmRSS: a peak over
  // several samples is the highest of all of them (highest_rss).
  long peak_rss_kib = 0;
  bool ok = false;  // false: no such process (or /proc unreadable)
};

ProcSample sample_process(pid_t pid);

// The most memory the samples show resident, whichever of them saw it.
long highest_rss(std::initializer_list<ProcSample> samples);

}  // namespace chatbench
