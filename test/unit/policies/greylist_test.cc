// test/unit/policies/greylist_test.cc — greylisting's pure parts (network masking, sender
// normalisation, triplet and message keys, the exemption list parser, the decision table, the
// config reader's refusals) and the policy itself on a real loop over an LMDB store in a
// temporary directory (and an unreachable Redis for on_error). The chain keeps RCPT answers that
// carry a detail for the transaction's log line.
#include <doctest/doctest.h>

#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "lib/config/config.h"
#include "policies/chain.h"
#include "policies/greylist.h"
#include "policies/greylist_exemptions.h"
#include "policies/greylist_key.h"
#include "policies/registry.h"
#include "test/unit/store/store_test_util.h"

using namespace dotgate;
using namespace dotgate::policy;
using namespace std::chrono_literals;

TEST_CASE("greylist network: /24 and /64 by default, prefixes configurable, mapped IPv4 is IPv4") {
  struct Row {
    const char* ip;
    int v4, v6;
    const char* want;
  } rows[] = {
      {"192.0.2.1", 24, 64, "192.0.2.0/24"},
      {"192.0.2.254", 24, 64, "192.0.2.0/24"},
      {"192.0.3.1", 24, 64, "192.0.3.0/24"},
      {"198.51.100.77", 16, 64, "198.51.0.0/16"},
      {"198.51.100.77", 32, 64, "198.51.100.77/32"},
      {"203.0.113.9", 28, 64, "203.0.113.0/28"},
      {"2001:db8:1:2:3:4:5:6", 24, 64, "2001:db8:1:2::/64"},
      {"2001:db8:1:2:ffff::1", 24, 48, "2001:db8:1::/48"},
      {"::ffff:192.0.2.9", 24, 64, "192.0.2.0/24"},
      {"not-an-address", 24, 64, "not-an-address"},
      // the Envelope's form: with the port
      {"192.0.2.1:4711", 24, 64, "192.0.2.0/24"},
      {"[2001:db8:1:2::9]:4711", 24, 64, "2001:db8:1:2::/64"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.ip);
    CHECK(greylist_network(r.ip, r.v4, r.v6) == r.want);
  }
}

TEST_CASE("greylist sender: lower case, null sender, BATV, +detail and per-message numbers go") {
  struct Row {
    const char* in;
    const char* want;
  } rows[] = {
      {"Alice@Example.COM", "alice@example.com"},
      {"", "<>"},
      {"prvs=1234abcdef=alice@example.com", "alice@example.com"},
      {"alice+list@example.com", "alice@example.com"},
      {"bounce-12345-user=example.org@lists.example.com", "bounce-#-user=example.org@lists.example.com"},
      {"bounce-99999-user=example.org@lists.example.com", "bounce-#-user=example.org@lists.example.com"},
      {"a1b22c333@example.com", "a#b#c#@example.com"},
      {"noat", "noat"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.in);
    CHECK(greylist_sender(r.in) == r.want);
  }
}

TEST_CASE("greylist triplet key: stable, 128-bit hex, each part counts, no address in clear") {
  std::string k = greylist_triplet_key("192.0.2.0/24", "alice@example.com", "bob@example.net");
  CHECK(k.size() == 2 + 32);
  CHECK(k.rfind("t:", 0) == 0);
  CHECK(k.find("alice") == std::string::npos);
  CHECK(k == greylist_triplet_key("192.0.2.0/24", "alice@example.com", "bob@example.net"));
  CHECK(k != greylist_triplet_key("192.0.3.0/24", "alice@example.com", "bob@example.net"));
  CHECK(k != greylist_triplet_key("192.0.2.0/24", "carol@example.com", "bob@example.net"));
  CHECK(k != greylist_triplet_key("192.0.2.0/24", "alice@example.com", "dave@example.net"));
  // The separator keeps ("ab","c") and ("a","bc") apart.
  CHECK(greylist_triplet_key("n", "ab", "c") != greylist_triplet_key("n", "a", "bc"));
  // What the policy feeds it: the same client network and normalised addresses, whatever the case.
  auto key_of = [](const char* ip, const char* from, const char* to) {
    return greylist_triplet_key(greylist_network(ip, 24, 64), greylist_sender(from), greylist_recipient(to));
  };
  CHECK(key_of("192.0.2.10", "Alice@Example.com", "BOB@example.net") == key_of("192.0.2.200", "alice@example.com", "bob@example.net"));
}

namespace {
std::string message(const std::string& message_id, const std::string& date, const std::string& boundary, bool base64,
                    const std::string& body_text, const std::string& subject = "Quarterly report") {
  std::string m = "Message-ID: <" + message_id + ">\r\nDate: " + date +
                  "\r\nFrom: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: " + subject +
                  "\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"" + boundary + "\"\r\n\r\n";
  m += "--" + boundary + "\r\n";
  if (base64) {
    // the text in base64, on one line
    static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    std::size_t i = 0;
    for (; i + 2 < body_text.size(); i += 3) {
      unsigned n = (static_cast<unsigned char>(body_text[i]) << 16) | (static_cast<unsigned char>(body_text[i + 1]) << 8) |
                   static_cast<unsigned char>(body_text[i + 2]);
      out += k[(n >> 18) & 63];
      out += k[(n >> 12) & 63];
      out += k[(n >> 6) & 63];
      out += k[n & 63];
    }
    if (i < body_text.size()) {
      unsigned n = static_cast<unsigned char>(body_text[i]) << 16;
      if (i + 1 < body_text.size()) n |= static_cast<unsigned char>(body_text[i + 1]) << 8;
      out += k[(n >> 18) & 63];
      out += k[(n >> 12) & 63];
      out += i + 1 < body_text.size() ? k[(n >> 6) & 63] : '=';
      out += '=';
    }
    m += "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" + out + "\r\n";
  } else {
    m += "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + body_text + "\r\n";
  }
  m += "--" + boundary + "--\r\n";
  return m;
}
}  // namespace

TEST_CASE("greylist message digest: a rebuilt message (Message-ID, Date, boundary, encoding, wrapping) still matches") {
  const std::string text = "Hello Bob,\r\nhere is the report for this quarter.\r\nRegards, Alice\r\n";
  std::string first = greylist_message_digest(message("a1@example.com", "Mon, 1 Jan 2024 10:00:00 +0000", "b1", false, text));
  // The retry: new Message-ID and Date, new boundary, base64 instead of quoted-printable, rewrapped.
  std::string rewrapped = "Hello Bob, here is the\r\nreport for this quarter. Regards,\r\nAlice\r\n";
  std::string retry = greylist_message_digest(message("zz9@example.com", "Mon, 1 Jan 2024 10:07:31 +0000", "other", true, rewrapped));
  CHECK(first.size() == 64);
  CHECK(first == retry);
  // Another text, or another subject: another message.
  CHECK(first != greylist_message_digest(message("a1@example.com", "d", "b1", false, "Hello Carol,\r\nsomething else\r\n")));
  CHECK(first != greylist_message_digest(message("a1@example.com", "d", "b1", false, text, "Another subject")));
  // The message key: recipients in any order and case are one set; the network counts.
  CHECK(greylist_message_key("n", "s", {"b@x", "A@x"}, first) == greylist_message_key("n", "s", {"a@x", "b@x"}, first));
  CHECK(greylist_message_key("n", "s", {"a@x"}, first) != greylist_message_key("m", "s", {"a@x"}, first));
}

TEST_CASE("greylist exemption list parser: entries, comments, and errors with source and line") {
  GreylistExemptions ex;
  std::string text =
      "# comment\n"
      "\n"
      "network 192.0.2.0/24   # trailing comment\n"
      "network\t2001:db8::/32\r\n"
      "helo *.mail.example.net\n"
      "sender_domain @Example.COM\n";
  CHECK(parse_exemption_list(text, "list.txt", ex) == "");
  CHECK(ex.clients.networks.size() == 2);
  CHECK(ex.clients.helo_globs.size() == 1);
  REQUIRE(ex.sender_domains.size() == 1);
  CHECK(ex.sender_domains[0] == "example.com");
  CHECK(std::string(ex.match("192.0.2.77", "", "")) == "network");
  CHECK(std::string(ex.match("2001:db8::5", "", "")) == "network");
  CHECK(std::string(ex.match("198.51.100.1", "MX1.Mail.Example.NET", "")) == "helo");
  CHECK(std::string(ex.match("198.51.100.1", "x", "someone@example.com")) == "sender_domain");
  CHECK(std::string(ex.match("198.51.100.1", "x", "someone@eu.example.com")) == "sender_domain");  // subdomain
  CHECK(ex.match("198.51.100.1", "x", "someone@notexample.com") == nullptr);
  CHECK(ex.match("198.51.100.1", "x", "") == nullptr);

  struct Bad {
    const char* text;
    const char* error;
  } bad[] = {
      {"network 192.0.2.0/33\n", "f:1: prefix length over 32"},
      {"\n\nnetwork nonsense\n", "f:3: expected a network like 192.0.2.0/24 or 2001:db8::/32"},
      {"hello *.example\n", "f:1: unknown kind \"hello\" (network, helo or sender_domain)"},
      {"helo\n", "f:1: expected KIND VALUE (network, helo or sender_domain)"},
      {"helo a b\n", "f:1: one value per line"},
      {"sender_domain exa mple\n", "f:1: one value per line"},
      {"sender_domain ex!ample.com\n", "f:1: expected a domain name"},
  };
  for (const auto& b : bad) {
    CAPTURE(b.text);
    GreylistExemptions e;
    CHECK(parse_exemption_list(b.text, "f", e) == b.error);
  }
  GreylistExemptions whole;
  CHECK(parse_exemption_list(builtin_exemption_list(), "builtin", whole) == "");
  CHECK(whole.size() >= 8);
}

TEST_CASE("greylist shipped list: the senders seed 003 names are exempt") {
  GreylistExemptions ex;
  REQUIRE(parse_exemption_list(builtin_exemption_list(), "builtin", ex) == "");
  CHECK(ex.match("144.140.71.41", "gizmo06ps.bigpond.com", "x@bigpond.com") != nullptr);
  CHECK(ex.match("203.0.113.1", "mail.smartmax.com", "") != nullptr);
  CHECK(ex.match("203.0.113.1", "x", "someone@capesoft.com") != nullptr);
  CHECK(ex.match("203.0.113.1", "x", "someone@ozemail.com.au") != nullptr);
  CHECK(ex.match("203.0.113.1", "mx.example.org", "someone@example.org") == nullptr);
}

TEST_CASE("greylist decision: new, early retry, passed after the delay, known, expired window, auto-allowed") {
  GreylistConfig c;
  c.delay = 300;
  c.window = 3600;
  c.pass_lifetime = 86400 * 8;
  c.auto_allow_after = 3;
  const std::int64_t t0 = 1'700'000'000'000;

  auto d = greylist_decide(c, std::nullopt, 0, t0);
  CHECK(d.outcome == GreylistOutcome::New);
  CHECK(d.wait_seconds == 300);
  REQUIRE(d.write);
  CHECK(d.write->first_ms == t0);
  CHECK(d.ttl == 3600);
  CHECK_FALSE(d.passes());

  GreylistEntry first{t0, 0, t0};
  d = greylist_decide(c, first, 0, t0 + 100'000);
  CHECK(d.outcome == GreylistOutcome::EarlyRetry);
  CHECK(d.wait_seconds == 200);
  CHECK_FALSE(d.write);  // an early retry does not restart the clock
  d = greylist_decide(c, first, 0, t0 + 299'500);
  CHECK(d.wait_seconds == 1);  // rounded up, never 0

  d = greylist_decide(c, first, 0, t0 + 300'000);
  CHECK(d.outcome == GreylistOutcome::Passed);
  CHECK(d.passes());
  CHECK(d.count_pass);
  REQUIRE(d.write);
  CHECK(d.write->passed_ms == t0 + 300'000);
  CHECK(d.ttl == 86400 * 8);

  GreylistEntry passed{t0, t0 + 300'000, t0 + 300'000};
  d = greylist_decide(c, passed, 0, t0 + 400'000);
  CHECK(d.outcome == GreylistOutcome::Passed);
  CHECK_FALSE(d.count_pass);  // only a proven retry counts for auto_allow
  CHECK_FALSE(d.write);       // no write per message
  d = greylist_decide(c, passed, 0, t0 + 300'000 + 86400'000 + 1);
  REQUIRE(d.write);           // a day on (lifetime / 8): its expiry moves
  CHECK(d.write->touched_ms == t0 + 300'000 + 86400'000 + 1);

  d = greylist_decide(c, first, 0, t0 + 3600'001);  // past the window without a retry: new again
  CHECK(d.outcome == GreylistOutcome::New);

  CHECK(greylist_decide(c, std::nullopt, 3, t0).outcome == GreylistOutcome::AutoAllowed);
  CHECK(greylist_decide(c, std::nullopt, 2, t0).outcome == GreylistOutcome::New);
  c.auto_allow_after = 0;
  CHECK(greylist_decide(c, std::nullopt, 1000, t0).outcome == GreylistOutcome::New);

  CHECK(decode_greylist_entry(encode_greylist_entry(passed))->passed_ms == passed.passed_ms);
  CHECK_FALSE(decode_greylist_entry("garbage"));
  CHECK_FALSE(decode_greylist_entry("1 5 0 0 extra"));

  Verdict v = greylist_deferral(c, 42, GreylistOutcome::EarlyRetry);
  CHECK(v.reply.serialize() == "450 4.7.1 Greylisted, try again in 42 seconds\r\n");
  CHECK(v.detail == "early_retry");
}

namespace {
struct Fixture {
  store_test::TempDir dir;
  config::Config config;
  Fixture() {
    config.store.lmdb.path = dir.path + "/store";
    config.store.lmdb.map_size = 16ull << 20;
  }
  std::shared_ptr<GreylistConfig> read(const nlohmann::json& j) {
    PolicyConfigReader r(j, "policies[0]");
    r.string("type", "");
    auto c = read_greylist_config(r, config);
    r.finish();
    return c;
  }
};

std::string refusal(Fixture& f, const nlohmann::json& j) {
  try {
    f.read(j);
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("greylist config: defaults, and refusals with their key paths") {
  Fixture f;
  auto c = f.read({{"type", "greylist"}});
  CHECK(c->delay == 300);
  CHECK(c->code == 450);
  CHECK(c->at_rcpt);
  CHECK_FALSE(c->at_dot);
  CHECK(c->on_error == OnError::Accept);
  CHECK(c->exempt.size() >= 8);  // the shipped list
  CHECK(f.read({{"type", "greylist"}, {"builtin_exemptions", false}})->exempt.size() == 0);

  CHECK(refusal(f, {{"delay", 600}, {"window", 300}}) == "policies[0].window: must be longer than delay");
  CHECK(refusal(f, {{"code", 550}}) == "policies[0].code: expected integer in 400..459");
  CHECK(refusal(f, {{"enhanced", "5.7.1"}}) == "policies[0].enhanced: expected an enhanced status code of class 4 (4.7.1)");
  CHECK(refusal(f, {{"text", "two\r\nlines"}}) == "policies[0].text: control characters are not allowed");
  CHECK(refusal(f, {{"exempt", {{"networks", {"300.1.1.1"}}}}}).rfind("policies[0].exempt.networks: \"300.1.1.1\"", 0) == 0);
  CHECK(refusal(f, {{"exempt", {{"hosts", {"x"}}}}}) == "policies[0].exempt.hosts: unknown key");
  CHECK(refusal(f, {{"auto_allow", {{"after", -1}}}}) == "policies[0].auto_allow.after: expected integer in 0..1000000");
  CHECK(refusal(f, {{"stage", "data"}}) == "policies[0].stage: expected one of rcpt, dot, both");
  CHECK(refusal(f, {{"exempt_files", {"/nonexistent/list.txt"}}}) == "policies[0].exempt_files[0]: cannot open /nonexistent/list.txt");
  std::string list = f.dir.path + "/mine.txt";
  std::ofstream(list) << "network 10.0.0.0/8\nbogus line here\n";
  CHECK(refusal(f, {{"exempt_files", {list}}}) == "policies[0].exempt_files[0]: " + list + ":2: one value per line");
  f.config.store.lmdb.path = "/proc/nope/store";
  CHECK(refusal(f, {}).rfind("store.lmdb.path: cannot create", 0) == 0);
}

namespace {
// Asks the policy and runs the loop until it answers.
Verdict ask_rcpt(uv_loop_t* loop, Policy& p, const Envelope& env, const std::string& rcpt) {
  std::optional<Verdict> got;
  p.rcpt(env, rcpt, [&](Verdict v) { got = std::move(v); });
  REQUIRE(store_test::run_until(loop, [&] { return got.has_value(); }));
  return *got;
}
Envelope envelope(const char* ip, const char* helo, const char* from) {
  Envelope e;
  e.client_address = ip;
  e.helo = helo;
  e.mail_from = from;
  return e;
}
}  // namespace

TEST_CASE("greylist policy on a loop with LMDB: new, early retry, passed after the delay, auto-allow, exempt") {
  Fixture f;
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    auto c = f.read({{"delay", 1}, {"window", 60}, {"auto_allow", {{"after", 1}, {"period", 3600}}},
                     {"exempt", {{"helo", {"*.trusted.example"}}, {"profiles", {"lax"}}}}});
    GreylistPolicy p(c, &loop);
    Envelope env = envelope("192.0.2.10:4711", "mx.example.org", "alice@example.org");

    Verdict v = ask_rcpt(&loop, p, env, "bob@example.net");
    CHECK(v.reply.serialize() == "450 4.7.1 Greylisted, try again in 1 seconds\r\n");
    CHECK(v.detail == "new");
    // The write is not waited for by the policy: give the writer its moment.
    std::this_thread::sleep_for(50ms);
    v = ask_rcpt(&loop, p, env, "bob@example.net");
    CHECK(v.detail == "early_retry");
    CHECK(v.reply.code == 450);
    std::this_thread::sleep_for(1100ms);
    // Another address of the same /24: the same triplet.
    v = ask_rcpt(&loop, p, envelope("192.0.2.99", "mx.example.org", "alice@example.org"), "Bob@Example.NET");
    CHECK(v.passed());
    CHECK(v.detail == "passed");
    std::this_thread::sleep_for(50ms);
    // One proven retry auto-allows the network (after: 1): a new triplet passes at once.
    v = ask_rcpt(&loop, p, env, "carol@example.net");
    CHECK(v.passed());
    CHECK(v.detail == "auto_allowed");
    // Another network is still greylisted.
    v = ask_rcpt(&loop, p, envelope("198.51.100.1", "mx.other.example", "alice@example.org"), "carol@example.net");
    CHECK(v.detail == "new");
    // Exempt by HELO, and by recipient profile: no store asked.
    v = ask_rcpt(&loop, p, envelope("203.0.113.5:25", "relay.trusted.example", "x@y.example"), "carol@example.net");
    CHECK(v.passed());
    CHECK(v.detail == "exempt");
    Envelope lax = envelope("203.0.113.5", "mx.example.com", "x@y.example");
    lax.profile = "lax";
    CHECK(ask_rcpt(&loop, p, lax, "carol@example.net").detail == "exempt");
    CHECK(c->stats->count(GreylistStage::Rcpt, GreylistOutcome::New) == 2);
    CHECK(c->stats->count(GreylistStage::Rcpt, GreylistOutcome::EarlyRetry) == 1);
    CHECK(c->stats->count(GreylistStage::Rcpt, GreylistOutcome::Passed) == 1);
    CHECK(c->stats->count(GreylistStage::Rcpt, GreylistOutcome::AutoAllowed) == 1);
    CHECK(c->stats->count(GreylistStage::Rcpt, GreylistOutcome::Exempt) == 2);
    // Cancelled while the store answers: the answer goes nowhere.
    bool called = false;
    p.rcpt(env, "dave@example.net", [&](Verdict) { called = true; });
    p.cancel();
    store_test::run_until(&loop, [] { return false; }, 100ms);
    CHECK_FALSE(called);
  }
  net::LoopShare::release_lingering();
  CHECK(store_test::loop_ends(&loop));
}

TEST_CASE("greylist policy: a store that gives no answer follows on_error (accept by default, or tempfail)") {
  Fixture f;
  f.config.store.backend = config::StoreConfig::Backend::Redis;
  f.config.store.redis.port = store_test::free_port();  // nothing listens
  f.config.store.redis.connect_timeout = 200ms;
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    auto accept = f.read({{"name", "gl-accept"}});
    GreylistPolicy p(accept, &loop);
    Verdict v = ask_rcpt(&loop, p, envelope("192.0.2.1", "h", "a@b.example"), "c@d.example");
    CHECK(v.passed());
    CHECK(v.detail == "store_error");
    CHECK(v.error == "unavailable");
    CHECK(accept->stats->count(GreylistStage::Rcpt, GreylistOutcome::StoreError) == 1);

    auto tempfail = f.read({{"name", "gl-tempfail"}, {"on_error", "tempfail"}});
    GreylistPolicy q(tempfail, &loop);
    v = ask_rcpt(&loop, q, envelope("192.0.2.1", "h", "a@b.example"), "c@d.example");
    CHECK(v.reply.serialize() == "451 4.3.0 Greylisting unavailable, try again later\r\n");
  }
  net::LoopShare::release_lingering();
  CHECK(store_test::loop_ends(&loop));
}

namespace {
class Detailed final : public Policy {
 public:
  std::string_view name() const override { return "detailed"; }
  void rcpt(const Envelope&, const std::string& r, Done done) override {
    Verdict v = r == "no@x" ? Verdict::fail(450, "4.7.1", "later") : Verdict::pass();
    v.detail = r == "no@x" ? "new" : "passed";
    done(std::move(v));
  }
};
}  // namespace

TEST_CASE("chain: RCPT answers with a detail are kept per recipient for the log line, until the next MAIL") {
  std::vector<Chain::Entry> entries;
  entries.push_back({std::make_unique<Detailed>()});
  Chain chain(std::move(entries));
  Envelope env;
  int answers = 0;
  chain.run(Chain::Hook::Mail, env, "", nullptr, [&](Verdict) { ++answers; });
  chain.run(Chain::Hook::Rcpt, env, "yes@x", nullptr, [&](Verdict v) { CHECK(v.passed()); ++answers; });
  chain.run(Chain::Hook::Rcpt, env, "no@x", nullptr, [&](Verdict v) { CHECK(v.reply.code == 450); ++answers; });
  CHECK(answers == 3);
  REQUIRE(chain.envelope_results().size() == 2);
  CHECK(chain.envelope_results()[0].recipient == "yes@x");
  CHECK(chain.envelope_results()[0].detail == "passed");
  CHECK(chain.envelope_results()[1].recipient == "no@x");
  CHECK(chain.envelope_results()[1].outcome == "tempfail");
  chain.run(Chain::Hook::Mail, env, "", nullptr, [&](Verdict) {});
  CHECK(chain.envelope_results().empty());
}
