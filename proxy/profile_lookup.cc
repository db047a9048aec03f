// proxy/profile_lookup.cc — see profile_lookup.h.
#include "proxy/profile_lookup.h"

#include "lib/http/header_value.h"

namespace dotgate::proxy {

namespace {
http::Url parsed_url(const std::string& text) {
  http::Url url;
  http::parse_url(text, url);  // checked at load (lib/config/profile_lookup.cc)
  return url;
}
}  // namespace

ProfileLookup::ProfileLookup(uv_loop_t* loop, const config::Config& config)
    : config_(config.profile_lookup),
      client_(new http::Client(loop, parsed_url(config.profile_lookup.url), config.profile_lookup.max_connections)),
      cache_(config.profile_lookup.ttl, config.profile_lookup.negative_ttl, config.profile_lookup.max_entries,
             [loop] { return uv_now(loop); }) {
  for (const auto& p : config.profiles.profiles) profiles_.push_back(p.name);
  client_->retain();
}

ProfileLookup::~ProfileLookup() {
  // Every session holding a ticket holds this object too, so normally nothing is left; whatever
  // is has nobody to answer to.
  for (auto& [key, flight] : flights_) client_->cancel(flight.request);
  client_->release();  // the last reference: the client closes its connections, then frees itself
}

bool ProfileLookup::serves(const config::Config& config) const {
  if (!(config.profile_lookup == config_) || config.profiles.profiles.size() != profiles_.size()) return false;
  for (std::size_t i = 0; i < profiles_.size(); ++i)
    if (config.profiles.profiles[i].name != profiles_[i]) return false;
  return true;
}

std::optional<lookup::ProfileAnswer> ProfileLookup::cached(std::string_view recipient) { return cache_.get(recipient); }

std::uint64_t ProfileLookup::fetch(const std::string& recipient, Callback done) {
  std::uint64_t ticket = next_ticket_++;
  std::string key = lookup::ProfileCache::key(recipient);
  tickets_[ticket] = key;
  auto it = flights_.find(key);
  if (it != flights_.end()) {
    it->second.waiters.push_back(Waiter{ticket, std::move(done)});  // coalesced: one request
    return ticket;
  }
  Flight& flight = flights_[key];
  flight.waiters.push_back(Waiter{ticket, std::move(done)});
  http::Client::Headers headers;
  headers.emplace_back("Content-Type", "application/json");
  headers.emplace_back("Accept", "application/json");
  headers.emplace_back("X-Dotgate-Recipient", http::path_header_value(recipient));
  // The callback runs from the loop, never inside post(): `flight` is complete by then.
  flight.request = client_->post(headers, lookup::profile_request_body(recipient),
                                 static_cast<std::uint64_t>(config_.timeout.count()),
                                 [this, key, recipient](http::ClientResult result) {
                                   answered(key, recipient, std::move(result));
                                 });
  return ticket;
}

void ProfileLookup::cancel(std::uint64_t ticket) {
  auto t = tickets_.find(ticket);
  if (t == tickets_.end()) return;
  auto it = flights_.find(t->second);
  tickets_.erase(t);
  if (it == flights_.end()) return;
  auto& waiters = it->second.waiters;
  std::erase_if(waiters, [ticket](const Waiter& w) { return w.ticket == ticket; });
  if (waiters.empty()) {
    // Nobody waits for it any more: a hanging service must not keep a connection busy for no one.
    client_->cancel(it->second.request);
    flights_.erase(it);
  }
}

void ProfileLookup::answered(const std::string& key, const std::string& recipient, http::ClientResult result) {
  auto it = flights_.find(key);
  if (it == flights_.end()) return;  // cannot happen: a cancelled flight's request is cancelled
  std::vector<Waiter> waiters = std::move(it->second.waiters);
  flights_.erase(it);
  for (const auto& w : waiters) tickets_.erase(w.ticket);
  lookup::ProfileAnswer answer = result.ok() ? lookup::parse_profile_answer(result.status, result.body, profiles_)
                                             : lookup::ProfileAnswer::failed(result.error);
  cache_.put(recipient, answer);
  // The waiters may fetch again (their sessions pump on): everything of the flight is gone.
  for (auto& w : waiters) w.done(answer);
}

}  // namespace dotgate::proxy
