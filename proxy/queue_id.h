// proxy/queue_id.h — dotgate's id for one transaction: in its log lines, the verdict services'
// requests (rspamd's Queue-Id, X-Dotgate-Queue-Id) and the quarantine, so one grep finds a
// message everywhere. 14 upper-case hex digits: the second it started and a process-wide
// counter, unique within a process for a million transactions a second.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace dotgate::proxy {

inline std::string make_queue_id() {
  static std::atomic<std::uint32_t> counter{0};
  auto seconds = std::chrono::duration_cast<std::chrono::seconds>(
                     std::chrono::system_clock::now().time_since_epoch()).count();
  std::uint32_t n = counter.fetch_add(1, std::memory_order_relaxed) & 0xFFFFF;
  char buf[24];
  std::snprintf(buf, sizeof buf, "%09llX%05X", static_cast<unsigned long long>(seconds) & 0xFFFFFFFFFull, n);
  return buf;
}

}  // namespace dotgate::proxy
