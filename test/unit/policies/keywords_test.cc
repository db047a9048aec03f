// Unit tests for the keywords policy: list files, config validation, verdicts, and the job on a
// real uv loop (libuv's thread pool does the scan). Each loop test ends by checking the loop
// closes with nothing left (every job's after-work callback ran).
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string>

#include "lib/config/config.h"
#include "lib/smtp/data_stream.h"
#include "lib/spool/spool.h"
#include "policies/keywords.h"
#include "policies/registry.h"

using namespace dotgate;
using namespace dotgate::policy;
namespace fs = std::filesystem;

namespace {

struct Fixture {
  uv_loop_t loop{};
  fs::path dir;

  Fixture() {
    uv_loop_init(&loop);
    char tmpl[] = "/tmp/dotgate-keywords-test-XXXXXX";
    dir = ::mkdtemp(tmpl);
  }
  ~Fixture() {
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
    fs::remove_all(dir);
  }

  std::string list(const std::string& name, const std::string& content) {
    fs::path p = dir / name;
    std::ofstream(p, std::ios::binary) << content;
    return p.string();
  }

  // The factory as PolicySet::build makes it: the entry is policies[0] of the config.
  std::unique_ptr<PolicyFactory> factory(nlohmann::json c) {
    c["type"] = "keywords";
    config::Config config;
    config.policies = nlohmann::json::array();
    config.policies.push_back(c);
    PolicyConfigReader reader(config.policies[0], "policies[0]");
    reader.string("type", "");
    auto f = make_keywords_factory(reader, config);
    reader.finish();
    return f;
  }

  std::string error(nlohmann::json c) {
    try {
      factory(std::move(c));
    } catch (const config::ConfigError& e) {
      return e.what();
    }
    return "<no error>";
  }

  std::unique_ptr<Policy> policy(nlohmann::json c) { return factory(std::move(c))->create({&loop, dir.string()}); }

  std::shared_ptr<spool::Spool> spool(const std::string& wire) {
    auto s = std::make_shared<spool::Spool>(1 << 20, dir.string());
    s->append(wire);
    return s;
  }

  // Runs data_end to completion; nullopt when `done` never came.
  std::optional<Verdict> judge(Policy& p, const std::string& wire, const std::string& profile = "") {
    Envelope env;
    env.client_address = "192.0.2.1:40000";
    env.profile = profile;
    env.queue_id = "Q1";
    std::optional<Verdict> got;
    int calls = 0;
    p.data_end(env, spool(wire), [&](Verdict v) {
      ++calls;
      got = std::move(v);
    });
    CHECK(!got.has_value());  // delivered from the loop, never inside data_end
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(calls <= 1);
    return got;
  }
};

const std::string kWords = "# spam words\n\ncasino\nviagra\t3\nonline casino\t2\n";

std::string message(const std::string& body, const std::string& subject = "hello") {
  return "From: a@example.org\r\nSubject: " + subject + "\r\n\r\n" + body;
}

}  // namespace

// ---- list files ---------------------------------------------------------------------------------

TEST_CASE("keywords: list file format") {
  std::vector<match::Entry> out;
  std::string error;
  REQUIRE(parse_word_list("\xEF\xBB\xBF# comment\n\n  casino  \r\nviagra\t3\nonline casino\t-0.5\r\n   # indented comment\n"
                          "last without newline",
                          1.5, out, error));
  REQUIRE(out.size() == 4);
  CHECK(out[0].phrase == "casino");
  CHECK(out[0].score == 1.5);
  CHECK(out[1].phrase == "viagra");
  CHECK(out[1].score == 3);
  CHECK(out[2].phrase == "online casino");
  CHECK(out[2].score == -0.5);
  CHECK(out[3].phrase == "last without newline");
}

TEST_CASE("keywords: bad list lines are refused with their line number") {
  std::vector<match::Entry> out;
  std::string error;
  CHECK(!parse_word_list("ok\nword\tlots\n", 1, out, error));
  CHECK(error.find("line 2: bad score") == 0);
  CHECK(!parse_word_list("ok\nok\n\xFF\xFE\n", 1, out, error));
  CHECK(error == "line 3: not UTF-8");
  CHECK(!parse_word_list("\t5\n", 1, out, error));
  CHECK(error == "line 1: no phrase");
  CHECK(!parse_word_list("x\t1e9\n", 1, out, error));
  CHECK(error.find("line 1: bad score") == 0);
}


// ---- config ---------------------------------------------------------------------------------------

TEST_CASE("keywords: config errors carry their key paths") {
  Fixture f;
  std::string words = f.list("words.txt", kWords);
  CHECK(f.error({}) == "policies[0].lists: missing required key");
  CHECK(f.error({{"lists", nlohmann::json::array()}}).find("policies[0].lists: expected a non-empty array") == 0);
  CHECK(f.error({{"lists", "words.txt"}}) == "policies[0].lists: expected array");
  CHECK(f.error({{"lists", {{{"path", (f.dir / "missing.txt").string()}}}}}) ==
        "policies[0].lists[0].path: " + (f.dir / "missing.txt").string() + ": No such file or directory");
  CHECK(f.error({{"lists", {{{"path", "words.txt"}}}}}) == "policies[0].lists[0].path: expected absolute path");
  CHECK(f.error({{"lists", {{{"score", 1}}}}}) == "policies[0].lists[0].path: missing required key");
  CHECK(f.error({{"lists", {{{"path", words}, {"weight", 1}}}}}) == "policies[0].lists[0].weight: unknown key");
  CHECK(f.error({{"lists", {{{"path", words}}}}, {"bogus", 1}}) == "policies[0].bogus: unknown key");
  CHECK(f.error({{"lists", {{{"path", words}}}}, {"action", "drop"}}) ==
        "policies[0].action: expected one of reject, tempfail, quarantine");
  CHECK(f.error({{"lists", {{{"path", words}}}}, {"action", "tempfail"}, {"code", 550}}) ==
        "policies[0].code: 550 does not match action tempfail (expected 4xx)");
  CHECK(f.error({{"lists", {{{"path", words}}}}, {"enhanced", "4.7.1"}}).find("policies[0].enhanced:") == 0);
  CHECK(f.error({{"lists", {{{"path", words}}}}, {"message", "two\r\nlines"}}).find("policies[0].message:") == 0);
  CHECK(f.error({{"lists", {{{"path", words}}}}, {"threshold", 0}}).find("policies[0].threshold:") == 0);
  CHECK(f.error({{"lists", {{{"path", words}}}}, {"profiles", {{"strict", {{"treshold", 1}}}}}}) ==
        "policies[0].profiles.strict.treshold: unknown key");
  CHECK(f.error({{"lists", {{{"path", words}}}}, {"profiles", {{"strict", {{"action", "tempfail"}, {"code", 554}}}}}}) ==
        "policies[0].profiles.strict.code: 554 does not match action tempfail (expected 4xx)");
  CHECK(f.error({{"lists", {{{"path", words}}}}, {"profiles", 3}}) == "policies[0].profiles: expected object");
  std::string bad = f.list("bad.txt", "fine\nbroken\tx\n");
  CHECK(f.error({{"lists", {{{"path", bad}}}}}) == "policies[0].lists[0].path: " + bad +
                                                       ": line 2: bad score \"x\" (expected a number in -1000..1000 after the tab)");
  CHECK(f.error({{"lists", {{{"path", f.dir.string()}}}}}).find("policies[0].lists[0].path: ") == 0);  // a directory
}

TEST_CASE("keywords: registered, and built through PolicySet like any policy") {
  Fixture f;
  config::Config config;
  config.policies = nlohmann::json::array();
  config.policies.push_back({{"type", "keywords"}, {"lists", {{{"path", f.list("w.txt", kWords)}}}}});
  config.policies.push_back(nlohmann::json::object({{"type", "limits"}}));
  auto set = PolicySet::build(config);
  REQUIRE(set->names().size() == 2);
  CHECK(set->names()[0] == "keywords");
  config.policies[0]["lists"][0]["path"] = (f.dir / "gone.txt").string();
  CHECK_THROWS_WITH_AS(PolicySet::build(config), doctest::Contains("policies[0].lists[0].path: "), config::ConfigError);
}

TEST_CASE("keywords: a phrase in two lists counts once, with the later score") {
  Fixture f;
  auto p = f.policy({{"lists", {{{"path", f.list("a.txt", "Casino\n")}, {"score", 1}},
                                {{"path", f.list("b.txt", "casino\n")}, {"score", 4}}}},
                     {"threshold", 4}});
  auto v = f.judge(*p, message("casino\r\n"));
  REQUIRE(v);
  CHECK(v->action == Action::Fail);
  CHECK(v->reason == "keywords: score 4 >= 4: Casino x1");
}

// ---- verdicts --------------------------------------------------------------------------------------

TEST_CASE("keywords: below the threshold passes, at it the configured reply") {
  Fixture f;
  auto p = f.policy({{"lists", {{{"path", f.list("w.txt", kWords)}}}}, {"threshold", 5}});
  SUBCASE("clean") {
    auto v = f.judge(*p, message("Nothing to see here.\r\n"));
    REQUIRE(v);
    CHECK(v->passed());
    CHECK(v->error.empty());
  }
  SUBCASE("hits below the threshold") {
    auto v = f.judge(*p, message("casino casino\r\n"));
    REQUIRE(v);
    CHECK(v->passed());
    CHECK(v->reason == "keywords: score 2 < 5: casino x2");
  }
  SUBCASE("at the threshold: default reject") {
    // online casino (2) + casino (1, inside it) + casino (1) + viagra (3) = 7
    auto v = f.judge(*p, message("Online\r\n Casino, casino and VIAGRA\r\n"));
    REQUIRE(v);
    CHECK(v->action == Action::Fail);
    CHECK(v->reply.serialize() == "550 5.7.1 Message rejected by content filter\r\n");
    CHECK(v->reason == "keywords: score 7 >= 5: viagra x1, casino x2, online casino x1");
  }
}

TEST_CASE("keywords: actions and custom replies") {
  Fixture f;
  std::string words = f.list("w.txt", kWords);
  SUBCASE("tempfail") {
    auto p = f.policy({{"lists", {{{"path", words}}}}, {"threshold", 1}, {"action", "tempfail"}});
    auto v = f.judge(*p, message("casino\r\n"));
    REQUIRE(v);
    CHECK(v->action == Action::Fail);
    CHECK(v->reply.serialize() == "451 4.7.1 Message deferred by content filter, try again later\r\n");
  }
  SUBCASE("quarantine keeps a copy") {
    auto p = f.policy({{"lists", {{{"path", words}}}}, {"threshold", 1}, {"action", "quarantine"}});
    auto v = f.judge(*p, message("casino\r\n"));
    REQUIRE(v);
    CHECK(v->action == Action::FailKeep);
    CHECK(v->reply.code == 550);
  }
  SUBCASE("configured code, enhanced code and text") {
    auto p = f.policy({{"lists", {{{"path", words}}}}, {"threshold", 1}, {"code", 554}, {"enhanced", "5.7.0"},
                       {"message", "No spam here"}});
    auto v = f.judge(*p, message("casino\r\n"));
    REQUIRE(v);
    CHECK(v->reply.serialize() == "554 5.7.0 No spam here\r\n");
  }
}

TEST_CASE("keywords: profiles override the top level; an unknown profile does not") {
  Fixture f;
  auto p = f.policy({{"lists", {{{"path", f.list("w.txt", kWords)}}}},
                     {"threshold", 5},
                     {"message", "Rejected: spam words"},
                     {"profiles",
                      {{"strict", {{"threshold", 1}}},
                       {"lenient", {{"threshold", 100}}},
                       {"soft", {{"threshold", 1}, {"action", "tempfail"}}}}}});
  const std::string m = message("casino\r\n");
  auto top = f.judge(*p, m);
  REQUIRE(top);
  CHECK(top->passed());
  auto strict = f.judge(*p, m, "strict");
  REQUIRE(strict);
  CHECK(strict->action == Action::Fail);
  CHECK(strict->reply.serialize() == "550 5.7.1 Rejected: spam words\r\n");  // inherited text
  auto unknown = f.judge(*p, m, "nobody");
  REQUIRE(unknown);
  CHECK(unknown->passed());
  auto soft = f.judge(*p, m, "soft");
  REQUIRE(soft);
  CHECK(soft->reply.serialize() == "451 4.7.1 Message deferred by content filter, try again later\r\n");
  auto lenient = f.judge(*p, message("viagra viagra casino\r\n"), "lenient");
  REQUIRE(lenient);
  CHECK(lenient->passed());
}

TEST_CASE("keywords: words hidden by MIME are found; dot-stuffing is undone first") {
  Fixture f;
  auto p = f.policy({{"lists", {{{"path", f.list("w.txt", "viagra\ncasino\n")}}}}, {"threshold", 1}});
  SUBCASE("base64 text part") {
    auto v = f.judge(*p, "Subject: x\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\ndmlhZ3Jh\r\n");
    REQUIRE(v);
    CHECK(v->reason == "keywords: score 1 >= 1: viagra x1");
  }
  SUBCASE("RFC 2047 subject") {
    auto v = f.judge(*p, message("clean\r\n", "=?UTF-8?B?dmlhZ3Jh?="));
    REQUIRE(v);
    CHECK(!v->passed());
  }
  SUBCASE("a stuffed line") {
    auto v = f.judge(*p, message("..casino\r\n"));  // the client meant ".casino"
    REQUIRE(v);
    CHECK(v->reason == "keywords: score 1 >= 1: casino x1");
  }
}

TEST_CASE("keywords: a failed scan follows on_error") {
  KeywordsConfig c;
  c.matcher = std::make_shared<const match::Matcher>(std::vector<match::Entry>{{"x", 1}});
  KeywordsScan scan;
  scan.error = "decode";
  scan.detail = "std::bad_alloc";
  c.on_error = KeywordsOnError::Tempfail;
  Verdict v = keywords_verdict(c, c.settings, scan);
  CHECK(v.reply.serialize() == "451 4.7.0 Message could not be checked, try again later\r\n");
  CHECK(v.error == "decode");
  c.on_error = KeywordsOnError::Reject;
  CHECK(keywords_verdict(c, c.settings, scan).reply.code == 550);
  c.on_error = KeywordsOnError::Accept;
  v = keywords_verdict(c, c.settings, scan);
  CHECK(v.passed());
  CHECK(v.error == "decode");
}

// ---- the job ---------------------------------------------------------------------------------------

TEST_CASE("keywords: cancel before completion: no callback") {
  Fixture f;
  auto p = f.policy({{"lists", {{{"path", f.list("w.txt", kWords)}}}}, {"threshold", 1}});
  int calls = 0;
  Envelope env;
  p->data_end(env, f.spool(message("casino\r\n")), [&](Verdict) { ++calls; });
  p->cancel();
  p->cancel();  // twice is harmless
  uv_run(&f.loop, UV_RUN_DEFAULT);
  CHECK(calls == 0);
  // The policy is still usable for the next message.
  auto v = f.judge(*p, message("casino\r\n"));
  REQUIRE(v);
  CHECK(!v->passed());
}

TEST_CASE("keywords: cancel while the scan runs: no callback") {
  Fixture f;
  auto p = f.policy({{"lists", {{{"path", f.list("w.txt", kWords)}}}}, {"threshold", 1}});
  std::string big = message("");
  for (int i = 0; i < 20000; ++i) big += "some words and a casino in a long line of text\r\n";
  int calls = 0;
  Envelope env;
  p->data_end(env, f.spool(big), [&](Verdict) { ++calls; });
  ::usleep(2000);  // let a pool thread pick it up
  p->cancel();
  uv_run(&f.loop, UV_RUN_DEFAULT);
  CHECK(calls == 0);
}

TEST_CASE("keywords: the policy destroyed while the job runs; the job keeps what it needs") {
  Fixture f;
  auto factory = f.factory({{"lists", {{{"path", f.list("w.txt", kWords)}}}}, {"threshold", 1}});
  auto p = factory->create({&f.loop, f.dir.string()});
  int calls = 0;
  Envelope env;
  {
    auto s = f.spool(message("casino\r\n"));
    p->data_end(env, s, [&](Verdict) { ++calls; });
  }  // our spool reference is gone: the job holds its own
  p.reset();
  factory.reset();  // the config (and the matcher) live on in the job
  uv_run(&f.loop, UV_RUN_DEFAULT);
  CHECK(calls == 0);
}

TEST_CASE("keywords: many sessions at once on one loop") {
  Fixture f;
  auto factory = f.factory({{"lists", {{{"path", f.list("w.txt", kWords)}}}}, {"threshold", 3}});
  std::vector<std::unique_ptr<Policy>> policies;
  std::vector<std::optional<Verdict>> verdicts(16);
  for (int i = 0; i < 16; ++i) {
    policies.push_back(factory->create({&f.loop, f.dir.string()}));
    Envelope env;
    std::string body = i % 2 ? "viagra\r\n" : "clean\r\n";
    policies.back()->data_end(env, f.spool(message(body)), [&verdicts, i](Verdict v) { verdicts[i] = std::move(v); });
  }
  uv_run(&f.loop, UV_RUN_DEFAULT);
  for (int i = 0; i < 16; ++i) {
    REQUIRE(verdicts[i]);
    CHECK(verdicts[i]->passed() == (i % 2 == 0));
  }
}

TEST_CASE("keywords: the chain may free the policy inside done") {
  Fixture f;
  auto p = f.policy({{"lists", {{{"path", f.list("w.txt", kWords)}}}}, {"threshold", 1}});
  int calls = 0;
  Envelope env;
  Policy* raw = p.get();
  raw->data_end(env, f.spool(message("casino\r\n")), [&](Verdict) {
    ++calls;
    p.reset();
  });
  uv_run(&f.loop, UV_RUN_DEFAULT);
  CHECK(calls == 1);
  CHECK(!p);
}

TEST_CASE("keywords: without a loop, the error verdict at once") {
  Fixture f;
  auto factory = f.factory({{"lists", {{{"path", f.list("w.txt", kWords)}}}}});
  auto p = factory->create({nullptr, f.dir.string()});
  std::optional<Verdict> got;
  Envelope env;
  p->data_end(env, f.spool(message("x\r\n")), [&](Verdict v) { got = std::move(v); });
  REQUIRE(got);
  CHECK(got->error == "queue");
  CHECK(got->reply.code == 451);
}
