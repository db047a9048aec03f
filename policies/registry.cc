// policies/registry.cc — see registry.h. To add a policy: a new file in policies/ and one line in
// kRegistry below.
#include "policies/registry.h"

#include <algorithm>
#include <cctype>
#include <map>

#include "policies/greylist.h"
#include "policies/http.h"
#include "policies/keywords.h"
#include "policies/limits.h"
#include "policies/rspamd.h"
#include "policies/script.h"

namespace dotgate::policy {

namespace {
using Builder = std::unique_ptr<PolicyFactory> (*)(PolicyConfigReader&, const config::Config&);

const std::map<std::string, Builder>& registry() {
  static const std::map<std::string, Builder> kRegistry = {
      {"greylist", &make_greylist_factory},
      {"http", &make_http_factory},
      {"keywords", &make_keywords_factory},
      {"limits", &make_limits_factory},
      {"rspamd", &make_rspamd_factory},
      {"script", &make_script_factory},
  };
  return kRegistry;
}
}  // namespace

PolicyConfigReader::PolicyConfigReader(const nlohmann::json& object, std::string path)
    : object_(object), path_(std::move(path)) {}

std::uint64_t PolicyConfigReader::unsigned_integer(const std::string& key, std::uint64_t fallback,
                                                   std::uint64_t min, std::uint64_t max) {
  seen_.push_back(key);
  auto it = object_.find(key);
  if (it == object_.end()) return fallback;
  if (!it->is_number_integer() || (it->is_number_integer() && !it->is_number_unsigned() && it->get<std::int64_t>() < 0))
    throw config::ConfigError(path_ + "." + key + ": expected integer in " + std::to_string(min) + ".." + std::to_string(max));
  auto v = it->get<std::uint64_t>();
  if (v < min || v > max)
    throw config::ConfigError(path_ + "." + key + ": expected integer in " + std::to_string(min) + ".." + std::to_string(max));
  return v;
}

bool PolicyConfigReader::boolean(const std::string& key, bool fallback) {
  seen_.push_back(key);
  auto it = object_.find(key);
  if (it == object_.end()) return fallback;
  if (!it->is_boolean()) throw config::ConfigError(path_ + "." + key + ": expected boolean");
  return it->get<bool>();
}

std::string PolicyConfigReader::string(const std::string& key, const std::string& fallback) {
  seen_.push_back(key);
  auto it = object_.find(key);
  if (it == object_.end()) return fallback;
  if (!it->is_string()) throw config::ConfigError(path_ + "." + key + ": expected string");
  return it->get<std::string>();
}

double PolicyConfigReader::number(const std::string& key, double fallback, double min, double max) {
  seen_.push_back(key);
  auto it = object_.find(key);
  if (it == object_.end()) return fallback;
  auto range = [&] {
    // "3600.000000" -> "3600", "0.001000" -> "0.001": trailing zeros, then a bare point, go.
    auto trim = [](double d) {
      std::string s = std::to_string(d);
      s.erase(s.find_last_not_of('0') + 1);
      if (!s.empty() && s.back() == '.') s.pop_back();
      return s;
    };
    return path_ + "." + key + ": expected number in " + trim(min) + ".." + trim(max);
  };
  if (!it->is_number()) throw config::ConfigError(range());
  double v = it->get<double>();
  if (!(v >= min && v <= max)) throw config::ConfigError(range());
  return v;
}

std::vector<std::string> PolicyConfigReader::string_array(const std::string& key, const std::vector<std::string>& fallback) {
  seen_.push_back(key);
  auto it = object_.find(key);
  if (it == object_.end()) return fallback;
  if (!it->is_array()) throw config::ConfigError(path_ + "." + key + ": expected array of strings");
  std::vector<std::string> out;
  for (std::size_t i = 0; i < it->size(); ++i) {
    if (!(*it)[i].is_string())
      throw config::ConfigError(path_ + "." + key + "[" + std::to_string(i) + "]: expected string");
    out.push_back((*it)[i].get<std::string>());
  }
  return out;
}

const nlohmann::json* PolicyConfigReader::object(const std::string& key) {
  seen_.push_back(key);
  auto it = object_.find(key);
  if (it == object_.end()) return nullptr;
  if (!it->is_object()) throw config::ConfigError(path_ + "." + key + ": expected object");
  return &*it;
}

const nlohmann::json* PolicyConfigReader::array(const std::string& key) {
  seen_.push_back(key);
  auto it = object_.find(key);
  if (it == object_.end()) return nullptr;
  if (!it->is_array()) throw config::ConfigError(path_ + "." + key + ": expected array");
  return &*it;
}

std::string PolicyConfigReader::choice(const std::string& key, const std::string& fallback,
                                       const std::vector<std::string>& choices) {
  std::string v = string(key, fallback);
  if (std::find(choices.begin(), choices.end(), v) != choices.end()) return v;
  std::string list;
  for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
  throw config::ConfigError(path_ + "." + key + ": expected one of " + list);
}

void PolicyConfigReader::finish() const {
  for (auto it = object_.begin(); it != object_.end(); ++it) {
    if (std::find(seen_.begin(), seen_.end(), it.key()) == seen_.end())
      throw config::ConfigError(path_ + "." + it.key() + ": unknown key");
  }
}

std::shared_ptr<const PolicySet> PolicySet::build(const config::Config& config) {
  auto set = std::make_shared<PolicySet>();
  if (!config.policies.is_array()) throw config::ConfigError("policies: expected array");
  for (std::size_t i = 0; i < config.policies.size(); ++i) {
    const auto& entry = config.policies[i];
    std::string path = "policies[" + std::to_string(i) + "]";
    if (!entry.is_object()) throw config::ConfigError(path + ": expected object");
    auto type_it = entry.find("type");
    if (type_it == entry.end()) throw config::ConfigError(path + ".type: missing required key");
    if (!type_it->is_string()) throw config::ConfigError(path + ".type: expected string");
    std::string type = type_it->get<std::string>();
    auto found = registry().find(type);
    if (found == registry().end()) {
      std::string known;
      for (const auto& [name, _] : registry()) known += (known.empty() ? "" : ", ") + name;
      throw config::ConfigError(path + ".type: unknown policy type \"" + type + "\" (known: " + known + ")");
    }
    PolicyConfigReader reader(entry, path);
    reader.string("type", "");
    bool required = reader.boolean("required", false);
    bool sequential = reader.boolean("sequential", false);
    std::string name = reader.string("name", "");
    auto taken = [&](const std::string& n) {
      return std::any_of(set->items_.begin(), set->items_.end(), [&](const Item& it) { return it.name == n; });
    };
    if (!name.empty()) {
      bool valid = name.size() <= 64 && std::all_of(name.begin(), name.end(), [](unsigned char c) {
        return std::isalnum(c) || c == '-' || c == '_' || c == '.';
      });
      if (!valid) throw config::ConfigError(path + ".name: expected 1 to 64 letters, digits, '-', '_' or '.'");
      if (taken(name)) throw config::ConfigError(path + ".name: \"" + name + "\" is already used by another policy");
    } else {
      name = type;
      for (int k = 2; taken(name); ++k) name = type + "-" + std::to_string(k);
    }
    auto factory = found->second(reader, config);
    reader.finish();
    factory->required = required;
    Item item{type, name, sequential, std::move(factory), &policy_stats(name)};
    set->items_.push_back(std::move(item));
  }
  // Profiles name the policies that judge their recipients: every name must exist.
  if (config.profiles.enabled()) {
    for (auto& item : set->items_) item.every_profile = false;
    for (std::size_t p = 0; p < config.profiles.profiles.size(); ++p) {
      const auto& profile = config.profiles.profiles[p];
      for (std::size_t k = 0; k < profile.policies.size(); ++k) {
        const std::string& wanted = profile.policies[k];
        bool found = std::any_of(set->items_.begin(), set->items_.end(), [&](const Item& it) { return it.name == wanted; });
        if (!found)
          throw config::ConfigError("profiles[" + std::to_string(p) + "].policies[" + std::to_string(k) +
                                    "]: no policy named \"" + wanted + "\"");
      }
      for (auto& item : set->items_) {
        if (profile.all_policies ||
            std::find(profile.policies.begin(), profile.policies.end(), item.name) != profile.policies.end())
          item.profiles.push_back(profile.name);
      }
    }
    // A recipient no rule places (and no "default" profile) is judged by every policy.
    for (auto& item : set->items_) item.profiles.push_back("");
  }
  return set;
}

std::unique_ptr<Chain> PolicySet::make_chain(const PolicyContext& context) const {
  std::vector<Chain::Entry> entries;
  entries.reserve(items_.size());
  for (const auto& item : items_)
    entries.push_back({item.factory->create(context), item.factory->required, item.sequential, item.name, item.stats,
                       item.every_profile, item.profiles});
  return std::make_unique<Chain>(std::move(entries));
}

std::vector<std::string> PolicySet::names() const {
  std::vector<std::string> out;
  for (const auto& item : items_) out.push_back(item.name);
  return out;
}

}  // namespace dotgate::policy
