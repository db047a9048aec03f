// policies/registry.h — turns the config's "policies" array into factories, and a session's chain.
//
// Every policy type has one line in registry.cc (type name -> function that validates its JSON
// and returns a factory). Validation errors are ConfigErrors carrying the key path
// ("policies[0].max_message_size: expected integer"), so a bad policy config is refused at start
// and on SIGHUP exactly like a bad core key. A PolicySet is immutable and shared by the sessions
// made under one config.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "lib/config/config.h"
#include "policies/chain.h"
#include "policies/policy_metrics.h"

namespace dotgate::policy {

class PolicySet {
 public:
  // Throws config::ConfigError.
  static std::shared_ptr<const PolicySet> build(const config::Config& config);

  std::unique_ptr<Chain> make_chain(const PolicyContext& context) const;
  std::vector<std::string> names() const;

 private:
  struct Item {
    std::string type;
    std::string name;  // unique in the set: "name" from the config, else the type (then type-2, ...)
    bool sequential = false;
    std::unique_ptr<PolicyFactory> factory;
    PolicyStats* stats = nullptr;
    bool every_profile = true;
    std::vector<std::string> profiles{};  // when !every_profile
  };
  std::vector<Item> items_;
};

// A helper for factories: reads an object's keys with paths, refusing unknown ones.
class PolicyConfigReader {
 public:
  PolicyConfigReader(const nlohmann::json& object, std::string path);
  std::uint64_t unsigned_integer(const std::string& key, std::uint64_t fallback, std::uint64_t min,
                                 std::uint64_t max);
  bool boolean(const std::string& key, bool fallback);
  std::string string(const std::string& key, const std::string& fallback);
  // A number (integer or fractional) in [min, max]; for durations in seconds.
  double number(const std::string& key, double fallback, double min, double max);
  std::vector<std::string> string_array(const std::string& key, const std::vector<std::string>& fallback);
  // A nested object (read it with a PolicyConfigReader of its own, path + "." + key); nullptr
  // when absent.
  const nlohmann::json* object(const std::string& key);
  // An array of any items (the caller reads each, path + "." + key + "[i]"); nullptr when absent.
  const nlohmann::json* array(const std::string& key);
  // One of `choices`; the error lists them.
  std::string choice(const std::string& key, const std::string& fallback, const std::vector<std::string>& choices);
  bool has(const std::string& key) const { return object_.contains(key); }
  const std::string& path() const { return path_; }
  // Throws for any key that no accessor asked for.
  void finish() const;

 private:
  const nlohmann::json& object_;
  std::string path_;
  std::vector<std::string> seen_;
};

}  // namespace dotgate::policy
