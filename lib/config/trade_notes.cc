// lib/config/trade_notes.cc — see trade_notes.h. The wording is what --check-config prints and
// what the README's "Downstream connection pool" and "Busy polling" paragraphs explain at length.
#include "lib/config/trade_notes.h"

namespace dotgate::config {

std::vector<std::string> trade_notes(const Config& config, int workers) {
  std::vector<std::string> notes;
  const DownstreamConfig& d = config.downstream;
  const std::string w = std::to_string(workers);
  if (d.pool_size > 0) {
    const std::string n = std::to_string(d.pool_size);
    notes.push_back("downstream.pool.size=" + n + ": the MTA holds " + std::to_string(d.pool_size * workers) +
                    " idle connections (" + n + " per worker, " + w +
                    " workers), each an smtpd process against its process limit; greetings reach clients up to " +
                    std::to_string(d.pool_max_idle.count() / 1000) + " s (pool.max_idle) after the MTA sent them");
  }
  if (d.pool_max_sessions > 1) {
    const std::string setting = "downstream.pool.max_sessions=" + std::to_string(d.pool_max_sessions);
    if (d.pool_size == 0) {
      notes.push_back(setting + ": no effect without downstream.pool.size (a kept connection needs a pool slot)");
    } else if (d.xclient) {
      notes.push_back(setting + ": no effect with downstream.xclient (a connection that said XCLIENT serves one client)");
    } else {
      notes.push_back(setting + ": the MTA sees several clients, one after another, on one connection; its "
                      "per-connection logs and limits (connect/disconnect lines, smtpd_soft_error_limit, "
                      "smtpd_hard_error_limit, smtpd_client_connection_count_limit) count them together, "
                      "and every client comes from dotgate's address");
    }
  }
  if (config.busy_poll_us > 0) {
    notes.push_back("busy_poll_us=" + std::to_string(config.busy_poll_us) + ": while mail flows each of the " + w +
                    " workers may spend up to a core polling instead of sleeping (it counts against a container's "
                    "CPU limit); an idle dotgate spends nothing");
  }
  return notes;
}

}  // namespace dotgate::config
