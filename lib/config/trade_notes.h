// lib/config/trade_notes.h — what the speed settings in a config trade, in a mail admin's words.
//
// The fast settings are not the defaults where they change what the MTA sees or spends:
// downstream.pool.size holds idle MTA processes, pool.max_sessions > 1 puts several clients on one
// MTA connection, busy_poll_us spends CPU while mail flows. For each one set (and for a setting
// that another one makes useless) this returns one line saying so. Called by main() for
// --check-config (printed) and at start (logged); pure: config in, text out, nothing owned.
#pragma once

#include <string>
#include <vector>

#include "lib/config/config.h"

namespace dotgate::config {

// workers: the resolved worker count (config.workers, or one per core when 0).
std::vector<std::string> trade_notes(const Config& config, int workers);

}  // namespace dotgate::config
