// lib/config/rewrite.h — the "rewrite" section of the config (issue 14): the compiled reply
// rewriting rules, and the maintenance flag's configured value.
//
// Read by lib/config/rewrite.cc (read_rewrite, called by config.cc after "smtp", whose hostname
// the hide_banner built-in shows). The rules are compiled at load (lib/smtp/reply_rules.h), so a
// rule that could make a reply invalid is refused then, with its key path; the compiled set is
// immutable and shared by every session of the Config.
#pragma once

#include <memory>

#include "lib/smtp/reply_rules.h"

namespace dotgate::config {

struct RewriteConfig {
  std::shared_ptr<const smtp::ReplyRules> rules = smtp::ReplyRules::defaults();
  // The maintenance flag (a downstream 5xx to RCPT reaches the client as 4xx): its value at start,
  // and again whenever a reload changes this key. In between, the admin port may set it.
  bool maintenance = false;
  // Whether the admin port may set the flag (POST /maintenance/on, /maintenance/off).
  bool maintenance_admin = true;
};

}  // namespace dotgate::config
