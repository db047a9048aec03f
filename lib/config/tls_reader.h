// lib/config/tls_reader.h — reading the TLS keys of the config (called by config.cc): the
// top-level `tls`, a listener's `tls` and `require_tls`, the downstream's `starttls` and `tls`.
#pragma once

#include "lib/config/config.h"
#include "lib/config/node.h"

namespace dotgate::config {

void read_tls(Node& node, TlsConfig& out);                   // "tls"
void read_listener_tls(Node& listener, Endpoint& out);        // "listeners[i]": tls, require_tls
void read_downstream_tls(Node& downstream, DownstreamConfig& out);  // "downstream": starttls, tls
// What one key needs from another, once the whole document is read (a listener's TLS needs the
// certificate of the top-level `tls`). Throws ConfigError with the path of the key that needs it.
void check_tls_references(const Config& config);

}  // namespace dotgate::config
