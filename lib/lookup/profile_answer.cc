// lib/lookup/profile_answer.cc — see profile_answer.h.
#include "lib/lookup/profile_answer.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "lib/http/header_value.h"

namespace dotgate::lookup {

std::string profile_request_body(std::string_view recipient) {
  nlohmann::json body = {{"recipient", std::string(recipient)}};
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace {
// A name from the service goes into our log: short, printable.
std::string quoted_name(std::string_view name) {
  std::string s = http::header_value(name.substr(0, 64));
  if (name.size() > 64) s += "...";
  return "\"" + s + "\"";
}
}  // namespace

ProfileAnswer parse_profile_answer(int status, std::string_view body, std::span<const std::string> profiles) {
  if (status < 200 || status > 299) return ProfileAnswer::failed("status " + std::to_string(status));
  nlohmann::json doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return ProfileAnswer::failed("body is not JSON");
  if (!doc.is_object()) return ProfileAnswer::failed("body is not a JSON object");
  auto it = doc.find("profile");
  if (it == doc.end() || it->is_null()) return ProfileAnswer::none();
  if (!it->is_string()) return ProfileAnswer::failed("\"profile\" is neither a string nor null");
  const std::string& name = it->get_ref<const std::string&>();
  if (std::find(profiles.begin(), profiles.end(), name) == profiles.end())
    return ProfileAnswer::failed("unknown profile " + quoted_name(name));
  return ProfileAnswer::named(name);
}

}  // namespace dotgate::lookup
