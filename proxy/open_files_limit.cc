// proxy/open_files_limit.cc — see open_files_limit.h.
#include "proxy/open_files_limit.h"

#include <cerrno>
#include <fstream>

#include <sys/resource.h>

namespace dotgate::proxy {
namespace {

// The most descriptors one process may have (fs.nr_open, 1048576 by default): an "unlimited"
// hard limit cannot be set as the soft one, this can.
std::uint64_t kernel_open_files_cap() {
  std::ifstream in("/proc/sys/fs/nr_open");
  std::uint64_t n = 0;
  if (in >> n && n > 0) return n;
  return 1048576;
}

}  // namespace

OpenFilesLimit raise_open_files_limit() {
  OpenFilesLimit out;
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    out.error = errno;
    return out;
  }
  out.soft_before = out.soft = rl.rlim_cur;
  out.hard = rl.rlim_max;
  rlim_t target = rl.rlim_max == RLIM_INFINITY ? static_cast<rlim_t>(kernel_open_files_cap()) : rl.rlim_max;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < target) {
    rl.rlim_cur = target;
    if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) {
      out.error = errno;
      return out;
    }
    out.soft = target;
  }
  return out;
}

std::uint64_t current_open_files_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  return rl.rlim_cur;
}

std::uint64_t open_files_needed(const config::Config& config, int workers) {
  return 2 * static_cast<std::uint64_t>(config.smtp.max_connections) +
         static_cast<std::uint64_t>(workers) * config.downstream.pool_size + 100;
}

std::string open_files_warning(const config::Config& config, int workers, std::uint64_t limit) {
  std::uint64_t need = open_files_needed(config, workers);
  if (limit == 0 || limit >= need) return {};
  return "open files limit " + std::to_string(limit) + " is below the " + std::to_string(need) +
         " that smtp.max_connections " + std::to_string(config.smtp.max_connections) +
         " needs (two per session, plus the pool and a margin of 100): past it new clients are closed "
         "without a reply; raise it (ulimit -n, systemd LimitNOFILE=) or lower smtp.max_connections";
}

}  // namespace dotgate::proxy
