// lib/config/proxy_protocol_reader.h — reading the PROXY protocol keys of the config (called by
// config.cc): a listener's proxy_protocol and proxy_protocol_from, the top-level
// proxy_protocol_from (the listeners' default) and proxy_protocol_timeout.
#pragma once

#include "lib/config/config.h"
#include "lib/config/node.h"

namespace dotgate::config {

void read_listener_proxy_protocol(Node& listener, Endpoint& out);  // "listeners[i]"
// The top-level keys, then each proxy_protocol listener without a list of its own takes the
// top-level one; one left with none is refused (it would close every connection). Needs the
// listeners read first. Throws ConfigError with the key's path.
void read_proxy_protocol(Node& root, Config& config);

}  // namespace dotgate::config
