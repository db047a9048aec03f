// lib/lookup/profile_answer.h — the recipient -> profile lookup protocol, both directions, pure.
//
// What dotgate sends: POST, Content-Type: application/json, body {"recipient": "<address>"} (the
// address as the client gave it, original case), and the same address in X-Dotgate-Recipient.
// What it takes back: a 2xx with a JSON object. {"profile": "name"} names a configured profile;
// {"profile": null} or {} says "no answer from the service": the config rules decide. Anything
// else is an error with a reason (for the log): another status, a body that is not a JSON object,
// a "profile" that is neither a string nor null, or a name that is no configured profile. Other
// keys are ignored, so a service may add its own.
// Called by proxy/profile_lookup.cc (the per-worker client) and the unit tests; no I/O, no state.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace dotgate::lookup {

struct ProfileAnswer {
  enum class Kind { Profile, None, Error };
  Kind kind = Kind::None;
  std::string profile;  // Kind::Profile: a configured profile's name
  std::string error;    // Kind::Error: why the answer is unusable

  static ProfileAnswer named(std::string name) { return {Kind::Profile, std::move(name), {}}; }
  static ProfileAnswer none() { return {Kind::None, {}, {}}; }
  static ProfileAnswer failed(std::string why) { return {Kind::Error, {}, std::move(why)}; }
  bool operator==(const ProfileAnswer&) const = default;
};

// The request body. An address that is not valid UTF-8 (8-bit junk in RCPT TO) has its bad bytes
// replaced by U+FFFD: JSON cannot carry them, and refusing would let junk block the RCPT.
std::string profile_request_body(std::string_view recipient);
// status + body -> a profile, none, or an error. `profiles`: the configured profile names.
ProfileAnswer parse_profile_answer(int status, std::string_view body, std::span<const std::string> profiles);

}  // namespace dotgate::lookup
