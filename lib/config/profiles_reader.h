// lib/config/profiles_reader.h — reading the profile keys of the config (called by config.cc).
#pragma once

#include <functional>

#include "lib/config/node.h"
#include "lib/config/profiles.h"

namespace dotgate::config {

using VerdictReader = std::function<void(Node&, VerdictConfig&)>;

void read_profile_list(Node& node, ProfilesConfig& out, const VerdictReader& read_verdict);  // "profiles"
void read_recipient_rules(Node& node, ProfilesConfig& out);  // "recipients"; after the profiles
void read_split(Node& node, SplitConfig& split);             // "split"

}  // namespace dotgate::config
