// test/unit/policies/rspamd_test.cc — policies/rspamd: rspamd's /checkv2 answer mapped to a Verdict
// (rspamd_verdict, pure) for every action, with and without thresholds and profile overrides; the
// milter block's header formats; malformed, partial and wrongly typed answers; the request headers
// from the envelope; the config (defaults, unknown keys refused with paths, profiles).
#include <doctest/doctest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "lib/config/config.h"
#include "policies/http.h"
#include "policies/registry.h"
#include "policies/rspamd.h"
#include "policies/rspamd_request.h"
#include "policies/rspamd_verdict.h"

using namespace dotgate;
using policy::Action;
using policy::RspamdThresholds;

namespace {

// "pass", "pass +X-Spam: Yes +... -Subject", "fail 550 5.7.1 text", "error malformed: detail".
std::string describe(int status, std::string_view body, const RspamdThresholds& t = {}) {
  auto a = policy::rspamd_verdict(status, body, t);
  if (!a.ok) return "error " + a.error + ": " + a.detail;
  const auto& v = a.verdict;
  CHECK(v.error.empty());
  if (v.action != Action::Pass) {
    std::string out = "fail " + std::to_string(v.reply.code);
    for (const auto& l : v.reply.lines) out += " " + l;
    return out;
  }
  std::string out = "pass";
  for (const auto& [n, val] : v.edit.add_headers) out += " +" + n + ": " + val;
  for (const auto& n : v.edit.remove_headers) out += " -" + n;
  return out;
}

std::string answer(std::string_view action, double score, std::string_view extra = "") {
  nlohmann::json j = {{"is_skipped", false}, {"score", score}, {"required_score", 15.0}, {"action", action},
                      {"symbols", nlohmann::json::object()}, {"messages", nlohmann::json::object()}};
  std::string s = j.dump();
  if (!extra.empty()) s = s.substr(0, s.size() - 1) + "," + std::string(extra) + "}";
  return s;
}

const char* kSpamHeaders = " -X-Spam -X-Spam-Score -X-Spam-Action";

RspamdThresholds thresholds(std::optional<double> reject, std::optional<double> tempfail,
                            std::optional<double> add_header) {
  RspamdThresholds t;
  t.reject = reject;
  t.tempfail = tempfail;
  t.add_header = add_header;
  return t;
}

}  // namespace

TEST_CASE("rspamd: every action, rspamd deciding") {
  CHECK(describe(200, answer("no action", 0.5)) == "pass");
  CHECK(describe(200, answer("reject", 16)) == "fail 550 5.7.1 Spam message rejected");
  CHECK(describe(200, answer("soft reject", 3)) == "fail 451 4.7.1 Message deferred by content filter, try again later");
  CHECK(describe(200, answer("greylist", 4.5)) == "fail 451 4.7.1 Greylisted, try again later");
  CHECK(describe(200, answer("add header", 7.5)) ==
        std::string("pass +X-Spam: Yes +X-Spam-Score: 7.50 +X-Spam-Action: add header") + kSpamHeaders);
  CHECK(describe(200, answer("rewrite subject", 11, R"("subject":"***SPAM*** hello")")) ==
        std::string("pass +X-Spam: Yes +X-Spam-Score: 11.00 +X-Spam-Action: rewrite subject"
                    " +Subject: ***SPAM*** hello") + kSpamHeaders + " -Subject");
  // No subject to rewrite with: the X-Spam headers still go on, the Subject stays.
  auto r = policy::rspamd_verdict(200, answer("rewrite subject", 11), {});
  REQUIRE(r.ok);
  CHECK(r.verdict.edit.add_headers.size() == 3);
  CHECK(r.verdict.reason.find("no \"subject\"") != std::string::npos);
  // Negative scores print as such.
  CHECK(describe(200, answer("add header", -0.25)).find("X-Spam-Score: -0.25") != std::string::npos);
  // Any 2xx will do; rspamd answers 200.
  CHECK(describe(204, answer("no action", 0)) == "pass");
}

TEST_CASE("rspamd: reject and soft reject use rspamd's smtp_message") {
  CHECK(describe(200, R"({"action":"reject","score":15,"messages":{"smtp_message":"Gtube pattern"}})") ==
        "fail 550 5.7.1 Gtube pattern");
  CHECK(describe(200, R"({"action":"soft reject","score":0,"messages":{"smtp_message":"Ratelimit exceeded"}})") ==
        "fail 451 4.7.1 Ratelimit exceeded");
  // CR LF cannot make reply lines of their own; 8-bit text is not promised to the client.
  CHECK(describe(200, R"({"action":"reject","score":15,"messages":{"smtp_message":"a\r\n250 ok \u00e9"}})") ==
        "fail 550 5.7.1 a  250 ok ??");
  CHECK(describe(200, R"({"action":"reject","score":15,"messages":{"smtp_message":"  "}})") ==
        "fail 550 5.7.1 Spam message rejected");
  auto long_text = std::string(2000, 'x');
  auto r = policy::rspamd_verdict(200, R"({"action":"reject","score":15,"messages":{"smtp_message":")" + long_text + "\"}}", {});
  REQUIRE(r.ok);
  CHECK(r.verdict.reply.serialize().size() < 512);
  // Other messages are fine and ignored.
  CHECK(describe(200, answer("no action", 0, R"("messages2":1)")) == "pass");
}

TEST_CASE("rspamd: thresholds decide, rspamd's action ignored") {
  auto t = thresholds(15, 10, 6);
  CHECK(describe(200, answer("no action", 15), t) == "fail 550 5.7.1 Spam message rejected");
  CHECK(describe(200, answer("no action", 10), t).rfind("fail 451 4.7.1 ", 0) == 0);
  CHECK(describe(200, answer("reject", 9.99), t).find("X-Spam-Action: add header") != std::string::npos);
  CHECK(describe(200, answer("reject", 6), t).find("X-Spam-Score: 6.00") != std::string::npos);
  CHECK(describe(200, answer("reject", 5.99), t) == "pass");
  CHECK(describe(200, answer("soft reject", 0), t) == "pass");
  // "rewrite subject" has no threshold of its own: under thresholds it only adds the headers.
  CHECK(describe(200, answer("rewrite subject", 11, R"("subject":"x")"), thresholds(15, std::nullopt, 6)) ==
        std::string("pass +X-Spam: Yes +X-Spam-Score: 11.00 +X-Spam-Action: add header") + kSpamHeaders);
  // A threshold that is not set never fires.
  auto only_reject = thresholds(6, std::nullopt, std::nullopt);
  CHECK(describe(200, answer("add header", 5.9), only_reject) == "pass");
  CHECK(describe(200, answer("no action", 6), only_reject) == "fail 550 5.7.1 Spam message rejected");
  // GTUBE as rspamd reports it: a forced reject scored at rspamd's reject threshold.
  std::string gtube = R"({"is_skipped":true,"score":15.0,"required_score":15.0,"action":"reject",)"
                      R"("messages":{"smtp_message":"Gtube pattern"}})";
  CHECK(describe(200, gtube) == "fail 550 5.7.1 Gtube pattern");
  CHECK(describe(200, gtube, thresholds(6, std::nullopt, std::nullopt)) == "fail 550 5.7.1 Gtube pattern");
  CHECK(describe(200, gtube, thresholds(20, std::nullopt, std::nullopt)) == "pass");
  // The reason says both.
  auto r = policy::rspamd_verdict(200, answer("add header", 7), thresholds(6, std::nullopt, std::nullopt));
  CHECK(r.verdict.reason == "rspamd: reject (score 7.00, by threshold; rspamd said add header)");
}

TEST_CASE("rspamd: milter block, every format") {
  // name -> string, {value, order}, array of either; remove_headers name -> order.
  std::string milter = R"("milter":{"add_headers":{"X-A":"one","X-B":{"value":"two","order":0},)"
                       R"("X-C":[{"value":"c1","order":1},"c2"]},"remove_headers":{"X-Old":0,"X-Older":2}})";
  CHECK(describe(200, answer("no action", 0, milter)) == "pass +X-A: one +X-B: two +X-C: c1 +X-C: c2 -X-Old -X-Older");
  // Applied with the X-Spam headers on add header; removals once each.
  std::string both = R"("milter":{"add_headers":{"X-A":"one"},"remove_headers":{"x-spam":0,"X-Old":1}})";
  CHECK(describe(200, answer("add header", 6, both)) ==
        std::string("pass +X-Spam: Yes +X-Spam-Score: 6.00 +X-Spam-Action: add header +X-A: one") + kSpamHeaders +
            " -X-Old");
  // rspamd's own X-Spam wins over ours; the message's own still goes.
  std::string own = R"("milter":{"add_headers":{"x-spam":"yes, rspamd says"}})";
  CHECK(describe(200, answer("add header", 6, own)) ==
        std::string("pass +X-Spam-Score: 6.00 +X-Spam-Action: add header +x-spam: yes, rspamd says") + kSpamHeaders);
  // Applied under thresholds too, and on a reject: nothing (nothing is relayed).
  CHECK(describe(200, answer("no action", 1, milter), thresholds(6, 5, 4)).rfind("pass +X-A: one", 0) == 0);
  CHECK(describe(200, answer("reject", 16, milter)) == "fail 550 5.7.1 Spam message rejected");
  // Folded values are unfolded; a bare CR or LF becomes a space; controls become spaces.
  CHECK(describe(200, answer("no action", 0, R"("milter":{"add_headers":{"X-F":"a;\r\n\tb;\n c\rd\u0001e"}})")) ==
        "pass +X-F: a;\tb; c d e");
  // Empty blocks are fine.
  CHECK(describe(200, answer("no action", 0, R"("milter":{})")) == "pass");
  CHECK(describe(200, answer("no action", 0, R"("milter":{"add_headers":{},"remove_headers":{}})")) == "pass");
  CHECK(describe(200, answer("no action", 0, R"("milter":{"change_from":"x@y","add_rcpt":["z"]})")) == "pass");
}

TEST_CASE("rspamd: milter fields that cannot go into the message are dropped and named") {
  auto r = policy::rspamd_verdict(
      200, answer("no action", 0, R"("milter":{"add_headers":{"Bad Name":"v","X:Colon":"v","":"v","X-Ok":"v"}})"), {});
  REQUIRE(r.ok);
  REQUIRE(r.verdict.edit.add_headers.size() == 1);
  CHECK(r.verdict.edit.add_headers[0].first == "X-Ok");
  CHECK(r.verdict.reason.find("dropped") != std::string::npos);
  CHECK(r.verdict.reason.find("Bad Name") != std::string::npos);
  // A field that would not fit in one 998-octet line (the session folds nothing).
  std::string long_value(990, 'v');
  r = policy::rspamd_verdict(200, answer("no action", 0, R"("milter":{"add_headers":{"DKIM-Signature":")" +
                                                              long_value + R"(","X-Short":"v"}})"), {});
  REQUIRE(r.ok);
  REQUIRE(r.verdict.edit.add_headers.size() == 1);
  CHECK(r.verdict.edit.add_headers[0].first == "X-Short");
  CHECK(r.verdict.reason.find("DKIM-Signature") != std::string::npos);
  // At most 64 added fields.
  nlohmann::json many = nlohmann::json::object();
  for (int i = 0; i < 100; ++i) many["X-" + std::to_string(i)] = "v";
  r = policy::rspamd_verdict(200, answer("no action", 0, R"("milter":{"add_headers":)" + many.dump() + "}"), {});
  REQUIRE(r.ok);
  CHECK(r.verdict.edit.add_headers.size() == 64);
}

TEST_CASE("rspamd: the rewritten subject") {
  auto subject_of = [](std::string_view json_subject) {
    auto r = policy::rspamd_verdict(200, answer("rewrite subject", 11, std::string(R"("subject":)") + std::string(json_subject)), {});
    REQUIRE(r.ok);
    for (const auto& [n, v] : r.verdict.edit.add_headers)
      if (n == "Subject") return v;
    return std::string("(none)");
  };
  CHECK(subject_of(R"("***SPAM*** plain")") == "***SPAM*** plain");
  // rspamd answers in UTF-8: encoded words (RFC 2047), never splitting a character.
  CHECK(subject_of(R"("***SPAM*** caf\u00e9")") == "=?UTF-8?B?KioqU1BBTSoqKiBjYWbDqQ==?=");
  std::string long_utf8;
  for (int i = 0; i < 60; ++i) long_utf8 += "\u00e9";  // 120 octets, 2 each
  std::string enc = policy::rspamd_encode_header_value(long_utf8);
  // 45 octets would end inside a character: 44 (22 characters) per word, then the rest.
  std::string word22 = "w6nDqcOpw6nDqcOpw6nDqcOpw6nDqcOpw6nDqcOpw6nDqcOpw6nDqcOpw6k=";
  CHECK(enc == "=?UTF-8?B?" + word22 + "?= =?UTF-8?B?" + word22 + "?= =?UTF-8?B?w6nDqcOpw6nDqcOpw6nDqcOpw6nDqcOpw6nDqcOpw6k=?=");
  for (std::size_t start = 0, end; start < enc.size(); start = end + 1) {
    end = enc.find(' ', start);
    if (end == std::string::npos) end = enc.size();
    CHECK(end - start <= 75);
  }
  // Folding and CR LF in the subject go; a very long subject is cut to fit one line.
  CHECK(subject_of(R"("a\r\n b\nc")") == "a b c");
  std::string huge = "\"" + std::string(5000, 's') + "\"";
  auto s = subject_of(huge);
  CHECK(s.size() == 400);
  CHECK(policy::rspamd_encode_header_value("") == "");
  CHECK(policy::rspamd_encode_header_value("tab\there") == "=?UTF-8?B?dGFiCWhlcmU=?=");
}

TEST_CASE("rspamd: malformed, partial and wrongly typed answers") {
  CHECK(describe(500, R"({"error":"invalid command"})") == "error status: status 500");
  CHECK(describe(302, "") == "error status: status 302");
  CHECK(describe(200, "") == "error malformed: not JSON");
  CHECK(describe(200, "<html>") == "error malformed: not JSON");
  CHECK(describe(200, R"({"action":"reject","score":15)") == "error malformed: not JSON");  // cut short
  CHECK(describe(200, "[1,2]") == "error malformed: not a JSON object");
  CHECK(describe(200, "{}") == "error malformed: no \"action\" string");
  CHECK(describe(200, R"({"score":1})") == "error malformed: no \"action\" string");
  CHECK(describe(200, R"({"action":"no action"})") == "error malformed: no \"score\" number");
  CHECK(describe(200, R"({"action":5,"score":1})") == "error malformed: no \"action\" string");
  CHECK(describe(200, R"({"action":"no action","score":"1"})") == "error malformed: no \"score\" number");
  CHECK(describe(200, R"({"action":"no action","score":null})") == "error malformed: no \"score\" number");
  CHECK(describe(200, R"({"action":"discard","score":1})") == "error malformed: unknown action \"discard\"");
  CHECK(describe(200, R"({"action":"no action","score":1})", thresholds(6, 5, 4)) == "pass");
  CHECK(describe(200, R"({"action":"spam","score":1})", thresholds(6, 5, 4)) ==
        "error malformed: unknown action \"spam\"");
  CHECK(describe(200, R"({"action":"reject","score":1,"messages":[]})") ==
        "error malformed: \"messages\" is not an object");
  CHECK(describe(200, R"({"action":"reject","score":1,"messages":{"smtp_message":1}})") ==
        "error malformed: \"messages.smtp_message\" is not a string");
  CHECK(describe(200, R"({"action":"rewrite subject","score":1,"subject":["x"]})") ==
        "error malformed: \"subject\" is not a string");
  CHECK(describe(200, R"({"action":"no action","score":1,"milter":"x"})") == "error malformed: \"milter\" is not an object");
  CHECK(describe(200, R"({"action":"no action","score":1,"milter":{"add_headers":[]}})") ==
        "error malformed: \"milter.add_headers\" is not an object");
  CHECK(describe(200, R"({"action":"no action","score":1,"milter":{"add_headers":{"X":1}}})") ==
        "error malformed: \"milter.add_headers\" value is not a string");
  CHECK(describe(200, R"({"action":"no action","score":1,"milter":{"add_headers":{"X":{"order":1}}}})") ==
        "error malformed: \"milter.add_headers\" entry has no \"value\"");
  CHECK(describe(200, R"({"action":"no action","score":1,"milter":{"add_headers":{"X":{"value":2}}}})") ==
        "error malformed: \"milter.add_headers\" value is not a string");
  CHECK(describe(200, R"({"action":"no action","score":1,"milter":{"add_headers":{"X":[["a"]]}}})") ==
        "error malformed: \"milter.add_headers\" value is not a string");
  CHECK(describe(200, R"({"action":"no action","score":1,"milter":{"add_headers":{"X":[null]}}})") ==
        "error malformed: \"milter.add_headers\" value is not a string");
  CHECK(describe(200, R"({"action":"no action","score":1,"milter":{"remove_headers":["X"]}})") ==
        "error malformed: \"milter.remove_headers\" is not an object");
  CHECK(describe(200, R"({"action":"no action","score":1,"milter":{"remove_headers":{"X":"all"}}})") ==
        "error malformed: \"milter.remove_headers\" value is not a number");
  // A malformed answer never passes by accident, even where its action would.
  CHECK(describe(200, R"({"action":"no action","score":1,"milter":{"add_headers":{"X":1}}})").rfind("error", 0) == 0);
}

TEST_CASE("rspamd: client errors and on_error") {
  using policy::OnError;
  CHECK(policy::rspamd_error_label("connection refused") == "connect");
  CHECK(policy::rspamd_error_label("connect failed: network is unreachable") == "connect");
  CHECK(policy::rspamd_error_label("timeout") == "timeout");
  CHECK(policy::rspamd_error_label("closed early: no response") == "closed");
  CHECK(policy::rspamd_error_label("malformed: bad status line") == "malformed");
  auto t = policy::rspamd_on_error(OnError::Tempfail, "timeout", "timeout");
  CHECK(t.reply.code == 451);
  CHECK(t.reply.lines.at(0).rfind("4.7.0 ", 0) == 0);
  CHECK(t.error == "timeout");
  CHECK(t.reason == "rspamd error: timeout");
  auto a = policy::rspamd_on_error(OnError::Accept, "status", "status 500");
  CHECK(a.passed());
  CHECK(a.error == "status");
  CHECK(a.edit.empty());
  auto j = policy::rspamd_on_error(OnError::Reject, "malformed", "not JSON");
  CHECK(j.reply.code == 550);
  CHECK(j.error == "malformed");
}

TEST_CASE("rspamd: request headers from the envelope") {
  CHECK(policy::rspamd_client_ip("192.0.2.1:2525") == "192.0.2.1");
  CHECK(policy::rspamd_client_ip("192.0.2.1") == "192.0.2.1");
  CHECK(policy::rspamd_client_ip("[2001:db8::1]:25") == "2001:db8::1");
  CHECK(policy::rspamd_client_ip("2001:db8::1") == "2001:db8::1");
  CHECK(policy::rspamd_client_ip("unknown") == "");
  CHECK(policy::rspamd_client_ip("") == "");
  CHECK(policy::rspamd_client_ip("[2001:db8::1") == "");
  CHECK(policy::rspamd_client_ip("999.1.1.1:25") == "");

  policy::Envelope e;
  e.client_address = "198.51.100.7:40000";
  e.helo = "mail.example\r\nX-Injected: 1";
  e.mail_from = "a@example.org";
  e.recipients = {"b@example.net", "c@example.net"};
  e.queue_id = "Q123";
  auto h = policy::rspamd_request_headers(e);
  decltype(h) want = {{"From", "<a@example.org>"}, {"Rcpt", "<b@example.net>"}, {"Rcpt", "<c@example.net>"},
                      {"IP", "198.51.100.7"},      {"Helo", "mail.example??X-Injected: 1"},
                      {"Queue-Id", "Q123"}};
  CHECK(h == want);
  // A bounce, no HELO, no queue id, an address that is not an IP: only what is known goes.
  policy::Envelope bounce;
  bounce.client_address = "unknown";
  bounce.recipients = {"b@example.net"};
  auto hb = policy::rspamd_request_headers(bounce);
  decltype(hb) want_b = {{"From", "<>"}, {"Rcpt", "<b@example.net>"}};
  CHECK(hb == want_b);
}

namespace {
std::shared_ptr<const policy::RspamdPolicyConfig> read(const std::string& text) {
  auto j = nlohmann::json::parse(text);
  policy::PolicyConfigReader reader(j, "policies[0]");
  reader.string("type", "");
  auto c = policy::read_rspamd_config(reader);
  reader.finish();
  return c;
}
std::string config_error(const std::string& text) {
  try {
    read(text);
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return "(accepted)";
}
}  // namespace

TEST_CASE("rspamd: config") {
  auto d = read(R"({"type":"rspamd"})");
  CHECK(d->url_text == "http://127.0.0.1:11333/checkv2");
  CHECK(d->url.port == 11333);
  CHECK(d->url.path == "/checkv2");
  CHECK(d->timeout_ms == 20000);
  CHECK(d->on_error == policy::OnError::Tempfail);
  CHECK(d->max_connections == 8);
  CHECK_FALSE(d->thresholds.any());
  CHECK_FALSE(d->thresholds_for("strict").any());

  auto c = read(R"({"type":"rspamd","url":"http://[::1]:11433/checkv2","timeout":2.5,"on_error":"accept",
                    "max_connections":2,"reject_score":15,"add_header_score":5,
                    "profiles":{"strict":{"reject_score":6},"lax":{"tempfail_score":-1.5},"none":{}}})");
  CHECK(c->url.host == "::1");
  CHECK(c->timeout_ms == 2500);
  CHECK(c->on_error == policy::OnError::Accept);
  CHECK(c->max_connections == 2);
  CHECK(*c->thresholds.reject == 15);
  CHECK_FALSE(c->thresholds.tempfail);
  CHECK(*c->thresholds.add_header == 5);
  // A profile overrides what it names and inherits the rest.
  const auto& strict = c->thresholds_for("strict");
  CHECK(*strict.reject == 6);
  CHECK(*strict.add_header == 5);
  const auto& lax = c->thresholds_for("lax");
  CHECK(*lax.reject == 15);
  CHECK(*lax.tempfail == -1.5);
  CHECK(*c->thresholds_for("none").reject == 15);
  CHECK(*c->thresholds_for("unlisted").reject == 15);
  CHECK(*c->thresholds_for("").reject == 15);
  // Same score, two profiles: "one recipient profile rejects at 6, another at 15".
  std::string seven = answer("add header", 7);
  CHECK(describe(200, seven, c->thresholds_for("strict")).rfind("fail 550", 0) == 0);
  CHECK(describe(200, seven, c->thresholds_for("")).rfind("pass +X-Spam: Yes", 0) == 0);

  CHECK(config_error(R"({"type":"rspamd","urll":"x"})") == "policies[0].urll: unknown key");
  CHECK(config_error(R"({"type":"rspamd","url":"https://127.0.0.1/checkv2"})").rfind("policies[0].url: ", 0) == 0);
  CHECK(config_error(R"({"type":"rspamd","url":"http://localhost:11333/"})").rfind("policies[0].url: ", 0) == 0);
  CHECK(config_error(R"({"type":"rspamd","timeout":0})").rfind("policies[0].timeout: expected number", 0) == 0);
  CHECK(config_error(R"({"type":"rspamd","on_error":"drop"})").rfind("policies[0].on_error: expected one of", 0) == 0);
  CHECK(config_error(R"({"type":"rspamd","reject_score":"6"})").rfind("policies[0].reject_score: expected number", 0) == 0);
  CHECK(config_error(R"({"type":"rspamd","max_connections":0})").rfind("policies[0].max_connections: ", 0) == 0);
  CHECK(config_error(R"({"type":"rspamd","profiles":[]})") == "policies[0].profiles: expected object");
  CHECK(config_error(R"({"type":"rspamd","profiles":{"strict":6}})") == "policies[0].profiles.strict: expected object");
  CHECK(config_error(R"({"type":"rspamd","profiles":{"strict":{"reject":6}}})") ==
        "policies[0].profiles.strict.reject: unknown key");
  CHECK(config_error(R"({"type":"rspamd","profiles":{"strict":{"add_header_score":true}}})")
            .rfind("policies[0].profiles.strict.add_header_score: expected number", 0) == 0);
  CHECK(config_error(R"({"type":"rspamd","profiles":{"strict":{"url":"http://127.0.0.1:1/"}}})") ==
        "policies[0].profiles.strict.url: unknown key");
}
