// lib/config/rewrite_reader.h — reading the "rewrite" section (called by config.cc).
#pragma once

#include <optional>

#include "lib/config/node.h"
#include "lib/config/rewrite.h"

namespace dotgate::config {

// `node`: the section, or nullopt when the config has none (the built-ins still need compiling,
// with smtp.hostname). Throws ConfigError.
void read_rewrite(std::optional<Node> node, const SmtpConfig& smtp, RewriteConfig& out);

}  // namespace dotgate::config
