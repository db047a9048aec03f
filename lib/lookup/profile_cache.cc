// lib/lookup/profile_cache.cc — see profile_cache.h.
#include "lib/lookup/profile_cache.h"

#include <algorithm>

namespace dotgate::lookup {

ProfileCache::ProfileCache(std::chrono::milliseconds ttl, std::chrono::milliseconds negative_ttl,
                           std::size_t max_entries, Clock now)
    : ttl_ms_(static_cast<std::uint64_t>(std::max<std::int64_t>(ttl.count(), 0))),
      negative_ttl_ms_(static_cast<std::uint64_t>(std::max<std::int64_t>(negative_ttl.count(), 0))),
      max_entries_(max_entries),
      now_(std::move(now)) {}

std::string ProfileCache::key(std::string_view recipient) {
  std::string k(recipient);
  for (char& c : k)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return k;
}

void ProfileCache::erase(std::unordered_map<std::string, Entry>::iterator it) {
  recent_.erase(it->second.recent);
  entries_.erase(it);
}

std::optional<ProfileAnswer> ProfileCache::get(std::string_view recipient) {
  auto it = entries_.find(key(recipient));
  if (it == entries_.end()) return std::nullopt;
  if (now_() >= it->second.expires_at) {
    erase(it);
    return std::nullopt;
  }
  recent_.splice(recent_.begin(), recent_, it->second.recent);
  return it->second.answer;
}

void ProfileCache::put(std::string_view recipient, const ProfileAnswer& answer) {
  if (answer.kind == ProfileAnswer::Kind::Error || max_entries_ == 0) return;
  std::uint64_t ttl = answer.kind == ProfileAnswer::Kind::Profile ? ttl_ms_ : negative_ttl_ms_;
  std::string k = key(recipient);
  auto it = entries_.find(k);
  if (it != entries_.end()) erase(it);  // a fresher answer replaces the old one
  if (ttl == 0) return;
  while (entries_.size() >= max_entries_) erase(entries_.find(recent_.back()));
  recent_.push_front(k);
  entries_.emplace(std::move(k), Entry{answer, now_() + ttl, recent_.begin()});
}

}  // namespace dotgate::lookup
