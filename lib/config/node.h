// lib/config/node.h — the config walker shared by the files of lib/config: a JSON value that
// knows its path ("listeners[0].port") and, for an object, which keys were read, so done() can
// refuse the rest. Internal to lib/config (config.cc, profiles.cc); everything else sees Config.
#pragma once

#include <cmath>
#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "lib/config/config.h"

namespace dotgate::config {

using nlohmann::json;

// A JSON value plus where it sits in the document. For objects it remembers the keys read, so
// done() can refuse the rest.
class Node {
 public:
  Node(const json& value, std::string path) : value_(&value), path_(std::move(path)) {}

  const json& value() const { return *value_; }
  const std::string& path() const { return path_; }

  [[noreturn]] void fail(const std::string& message) const {
    throw ConfigError((path_.empty() ? std::string("(top level)") : path_) + ": " + message);
  }

  // ---- structure ----
  void expect_object() const {
    if (!value_->is_object()) fail("expected object");
  }
  void expect_array() const {
    if (!value_->is_array()) fail("expected array");
  }

  // The member `key` if present (and marks it read), else nullopt. Requires expect_object().
  std::optional<Node> member(const std::string& key) {
    consumed_.insert(key);
    auto it = value_->find(key);
    if (it == value_->end()) return std::nullopt;
    return Node(*it, child_path(key));
  }
  Node required_member(const std::string& key) {
    auto node = member(key);
    if (!node) Node(*value_, child_path(key)).fail("missing required key");
    return *node;
  }
  Node element(std::size_t index) const {
    return Node((*value_)[index], path_ + "[" + std::to_string(index) + "]");
  }
  // Refuses the first key that was not read (keys iterate in sorted order: stable messages).
  void done() const {
    for (const auto& item : value_->items()) {
      if (!consumed_.count(item.key())) Node(item.value(), child_path(item.key())).fail("unknown key");
    }
  }

  // ---- scalars ----
  std::uint64_t as_uint(std::uint64_t min, std::uint64_t max) const {
    if (!value_->is_number_integer()) fail("expected integer");
    bool in_range;
    std::uint64_t v = 0;
    if (value_->is_number_unsigned()) {
      v = value_->get<std::uint64_t>();
      in_range = v >= min && v <= max;
    } else {
      // Only a document built in code (not parsed text) holds a non-negative signed integer.
      auto s = value_->get<std::int64_t>();
      v = static_cast<std::uint64_t>(s);
      in_range = s >= 0 && v >= min && v <= max;
    }
    if (!in_range) fail("expected integer in " + std::to_string(min) + ".." + std::to_string(max));
    return v;
  }
  bool as_bool() const {
    if (!value_->is_boolean()) fail("expected boolean");
    return value_->get<bool>();
  }
  const std::string& as_string() const {
    if (!value_->is_string()) fail("expected string");
    return value_->get_ref<const std::string&>();
  }
  // Seconds as a JSON number (fractional allowed), in (0, max] or [0, max] when zero_ok.
  // Kept in milliseconds: a value that rounds to 0 ms is refused as well, since a 0 timer in
  // libuv means "now", not "never".
  std::chrono::milliseconds as_seconds(double max, bool zero_ok) const {
    auto range = std::string(zero_ok ? ">= 0" : "> 0") + " and <= " + format_number(max);
    if (!value_->is_number()) fail("expected number of seconds " + range);
    double s = value_->get<double>();
    double ms = std::round(s * 1000.0);
    if (!std::isfinite(s) || s < 0 || s > max || (!zero_ok && ms < 1))
      fail("expected number of seconds " + range);
    return std::chrono::milliseconds(static_cast<std::int64_t>(ms));
  }
  // One of `choices` (index returned). A non-string is "not one of them" too.
  std::size_t as_choice(std::span<const std::string_view> choices) const {
    std::string list;
    for (auto c : choices) list += (list.empty() ? "" : ", ") + std::string(c);
    if (value_->is_string()) {
      std::size_t i = 0;
      for (auto c : choices) {
        if (value_->get_ref<const std::string&>() == c) return i;
        ++i;
      }
    }
    fail("expected one of " + list);
  }

 private:
  std::string child_path(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
  static std::string format_number(double d) {
    std::ostringstream out;
    out << d;
    return out.str();
  }

  const json* value_;
  std::string path_;
  std::set<std::string> consumed_;
};

}  // namespace dotgate::config
