// test/unit/policies/http_test.cc — policies/http: the webhook's JSON answer mapped to a Verdict
// (verdict_from_response, pure), what on_error makes of a failure, and URL parsing at config load.
#include <doctest/doctest.h>

#include <string>

#include "lib/http/client.h"
#include "policies/http.h"

using namespace dotgate;
using policy::Action;
using policy::verdict_from_response;

namespace {
std::string describe(int status, std::string_view body) {
  auto r = verdict_from_response(status, body);
  if (!r.ok) return "error: " + r.error;
  if (r.verdict.action == Action::Pass) return "pass";
  std::string out = r.verdict.action == Action::FailKeep ? "keep " : "fail ";
  out += std::to_string(r.verdict.reply.code);
  for (const auto& l : r.verdict.reply.lines) out += " " + l;
  return out;
}
}  // namespace

TEST_CASE("http policy: response mapping") {
  CHECK(describe(200, R"({"action":"accept"})") == "pass");
  CHECK(describe(204, R"({"action":"accept","code":250})") == "pass");
  CHECK(describe(200, R"({"action":"reject"})") == "fail 550 5.7.1 Message rejected by content filter");
  CHECK(describe(200, R"({"action":"reject","code":554,"enhanced":"5.7.9","message":"no"})") == "fail 554 5.7.9 no");
  CHECK(describe(200, R"({"action":"tempfail"})").rfind("fail 451 4.7.1 ", 0) == 0);
  CHECK(describe(200, R"({"action":"tempfail","code":421,"enhanced":"4.4.5"})").rfind("fail 421 4.4.5 ", 0) == 0);
  CHECK(describe(200, R"({"action":"quarantine"})") == "keep 550 5.7.1 Message rejected by content filter");
  // CR/LF in the text cannot make reply lines of their own.
  CHECK(describe(200, R"({"action":"reject","message":"a\r\n250 ok"})") == "fail 550 5.7.1 a  250 ok");
  CHECK(describe(200, R"({"action":"reject","message":""})") == "fail 550 5.7.1 Message rejected by content filter");

  CHECK(describe(503, R"({"action":"accept"})") == "error: status 503");
  CHECK(describe(302, "") == "error: status 302");
  CHECK(describe(200, "not json") == "error: not JSON");
  CHECK(describe(200, "[1]") == "error: not a JSON object");
  CHECK(describe(200, "{}") == "error: no \"action\" string");
  CHECK(describe(200, R"({"action":"drop"})") == "error: unknown action \"drop\"");
  CHECK(describe(200, R"({"action":"tempfail","code":550})") == "error: code 550 does not match tempfail");
  CHECK(describe(200, R"({"action":"reject","code":451})") == "error: code 451 does not match reject");
  CHECK(describe(200, R"({"action":"reject","code":250})") == "error: code 250 does not match reject");
  CHECK(describe(200, R"({"action":"reject","code":599})") == "error: code 599 does not match reject");
  CHECK(describe(200, R"({"action":"accept","code":550})") == "error: code 550 does not match accept");
  CHECK(describe(200, R"({"action":"reject","code":"550"})") == "error: \"code\" is not an integer");
  CHECK(describe(200, R"({"action":"reject","enhanced":"4.7.1"})") == "error: enhanced code \"4.7.1\" does not match reject");
  CHECK(describe(200, R"({"action":"reject","enhanced":"5.7"})") == "error: enhanced code \"5.7\" does not match reject");
  CHECK(describe(200, R"({"action":"reject","message":5})") == "error: \"message\" is not a string");
}

TEST_CASE("http policy: on_error") {
  using policy::OnError;
  CHECK(policy::verdict_on_error(OnError::Accept, "x").passed());
  auto t = policy::verdict_on_error(OnError::Tempfail, "timeout");
  CHECK(t.reply.code == 451);
  CHECK(t.reply.lines.at(0).rfind("4.7.0 ", 0) == 0);
  CHECK(t.reason.find("timeout") != std::string::npos);
  CHECK(policy::verdict_on_error(OnError::Reject, "x").reply.code == 550);
}

TEST_CASE("http client: URL parsing") {
  http::Url u;
  CHECK(http::parse_url("http://127.0.0.1:8080/check?x=1", u).empty());
  CHECK(u.host == "127.0.0.1");
  CHECK(u.port == 8080);
  CHECK(u.path == "/check?x=1");
  CHECK(u.host_header == "127.0.0.1:8080");
  CHECK(http::parse_url("http://[::1]:99", u).empty());
  CHECK(u.host == "::1");
  CHECK(u.path == "/");
  CHECK(u.host_header == "[::1]:99");
  CHECK(http::parse_url("http://10.0.0.1", u).empty());
  CHECK(u.port == 80);
  CHECK_FALSE(http::parse_url("https://127.0.0.1/", u).empty());
  CHECK_FALSE(http::parse_url("http://localhost:80/", u).empty());
  CHECK_FALSE(http::parse_url("http://127.0.0.1:0/", u).empty());
  CHECK_FALSE(http::parse_url("http://127.0.0.1:99999/", u).empty());
  CHECK_FALSE(http::parse_url("http://127.0.0.1:80/a b", u).empty());
  CHECK_FALSE(http::parse_url("http://:80/", u).empty());
}
