// proxy/open_files_limit.h — the process's open files limit (RLIMIT_NOFILE) against the
// connections the config allows.
//
// Who calls it: main(), once at start (before any socket is opened) raise_open_files_limit(),
// and open_files_warning() at start, on --check-config and on every SIGHUP reload. What it owns:
// nothing; it changes the whole process's soft limit, for good.
//
// Why: every client session holds two descriptors (the client's socket and the downstream MTA's),
// so smtp.max_connections 10000 needs over 20000, while many service managers and container
// runtimes start a process with a soft limit of 1024 (kept low for programs that still use
// select()) and a much higher hard limit. A process may raise its own soft limit up to the hard
// one, as nginx, haproxy and Postfix do; dotgate does so at start. Past the limit libuv's accept
// takes a connection and closes it at once (its EMFILE guard): the client gets no 421, only a
// closed socket, and a session that cannot connect downstream gets 421 4.4.0. So a limit below
// what max_connections needs is said at start, on reload and by --check-config, not found out
// under a spam run.
#pragma once

#include <cstdint>
#include <string>

#include "lib/config/config.h"

namespace dotgate::proxy {

struct OpenFilesLimit {
  std::uint64_t soft_before = 0;  // the soft limit the process started with
  std::uint64_t soft = 0;         // the soft limit now (the hard one when the raise worked)
  std::uint64_t hard = 0;
  int error = 0;                  // errno of a failed getrlimit/setrlimit, else 0
};

// Raises the soft RLIMIT_NOFILE to the hard one (capped at what the kernel allows one process,
// fs.nr_open, when the hard limit is "unlimited"). Returns what it found and did.
OpenFilesLimit raise_open_files_limit();

// The soft limit now (getrlimit), or 0 when it cannot be read.
std::uint64_t current_open_files_limit();

// Descriptors the config may need at once: two per allowed client connection
// (smtp.max_connections), the pooled downstream connections of `workers` workers, and a margin of
// 100 for listeners, the admin port, each loop's own descriptors, spool files and verdict services.
std::uint64_t open_files_needed(const config::Config& config, int workers);

// Empty when `limit` covers open_files_needed(); else one sentence for the log or --check-config.
std::string open_files_warning(const config::Config& config, int workers, std::uint64_t limit);

}  // namespace dotgate::proxy
