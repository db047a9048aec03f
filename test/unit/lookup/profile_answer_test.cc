// Unit tests for lib/lookup/profile_answer: the request body we send, and every
// kind of answer the service can give (a table: status + body -> profile / none / error reason).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lib/lookup/profile_answer.h"

using dotgate::lookup::parse_profile_answer;
using dotgate::lookup::profile_request_body;
using dotgate::lookup::ProfileAnswer;

namespace {
const std::vector<std::string> kProfiles = {"strict", "lenient", "open"};
ProfileAnswer answer(int status, const std::string& body) { return parse_profile_answer(status, body, kProfiles); }
}  // namespace

TEST_CASE("request body: the address as given, as JSON") {
  CHECK(profile_request_body("Alice@Example.COM") == R"({"recipient":"Alice@Example.COM"})");
  CHECK(nlohmann::json::parse(profile_request_body("a\"b\\c@x"))["recipient"] == "a\"b\\c@x");
  // 8-bit junk is not valid UTF-8: replaced, never an exception.
  std::string junk = "j\xff\xfe@x";
  auto parsed = nlohmann::json::parse(profile_request_body(junk));
  CHECK(parsed["recipient"] == "j\xEF\xBF\xBD\xEF\xBF\xBD@x");
  CHECK(nlohmann::json::parse(profile_request_body("jos\xC3\xA9@x"))["recipient"] == "jos\xC3\xA9@x");
}

TEST_CASE("answers: profile, none, error") {
  struct Case {
    int status;
    const char* body;
    ProfileAnswer want;
  };
  const Case cases[] = {
      {200, R"({"profile": "strict"})", ProfileAnswer::named("strict")},
      {201, R"({"profile": "open", "ttl": 5, "why": "list"})", ProfileAnswer::named("open")},  // other keys ignored
      {299, R"( {"profile":"lenient"} )", ProfileAnswer::named("lenient")},
      {200, R"({"profile": null})", ProfileAnswer::none()},
      {200, R"({})", ProfileAnswer::none()},
      {200, R"({"other": 1})", ProfileAnswer::none()},
      {500, R"({"profile": "strict"})", ProfileAnswer::failed("status 500")},
      {404, R"({})", ProfileAnswer::failed("status 404")},
      {199, R"({})", ProfileAnswer::failed("status 199")},
      {300, R"({"profile": "strict"})", ProfileAnswer::failed("status 300")},
      {200, "", ProfileAnswer::failed("body is not JSON")},
      {200, "strict", ProfileAnswer::failed("body is not JSON")},
      {200, R"({"profile": "strict")", ProfileAnswer::failed("body is not JSON")},
      {200, R"(["strict"])", ProfileAnswer::failed("body is not a JSON object")},
      {200, R"("strict")", ProfileAnswer::failed("body is not a JSON object")},
      {200, "null", ProfileAnswer::failed("body is not a JSON object")},
      {200, R"({"profile": 5})", ProfileAnswer::failed("\"profile\" is neither a string nor null")},
      {200, R"({"profile": ["strict"]})", ProfileAnswer::failed("\"profile\" is neither a string nor null")},
      {200, R"({"profile": "Strict"})", ProfileAnswer::failed("unknown profile \"Strict\"")},  // names are exact
      {200, R"({"profile": ""})", ProfileAnswer::failed("unknown profile \"\"")},
      {200, R"({"profile": "a\r\nb"})", ProfileAnswer::failed("unknown profile \"a??b\"")},
  };
  for (const auto& c : cases) {
    CAPTURE(c.status);
    CAPTURE(std::string(c.body));
    ProfileAnswer got = answer(c.status, c.body);
    CHECK(static_cast<int>(got.kind) == static_cast<int>(c.want.kind));
    CHECK(got.profile == c.want.profile);
    CHECK(got.error == c.want.error);
  }
}

TEST_CASE("answers: an unknown name from the service is cut short in the reason") {
  std::string name(500, 'x');
  ProfileAnswer got = answer(200, R"({"profile": ")" + name + "\"}");
  CHECK(got.kind == ProfileAnswer::Kind::Error);
  CHECK(got.error == "unknown profile \"" + std::string(64, 'x') + "...\"");
}
