// Unit tests for policies/chain: order, first-fail-stops, required policies, asynchronous
// answers, cancellation, and replies a broken policy may not send.
#include <doctest/doctest.h>

#include <functional>
#include <tuple>
#include <string>
#include <vector>

#include "lib/spool/spool.h"
#include "policies/chain.h"

using namespace dotgate::policy;

namespace {
// A policy that records its calls and answers as told: at once, or later through `later`.
struct Scripted final : Policy {
  std::string id;
  Verdict answer;
  bool async = false;
  std::vector<std::string>* log;
  Done later;
  bool cancelled = false;
  Scripted(std::string i, Verdict a, std::vector<std::string>* l, bool as = false)
      : id(std::move(i)), answer(std::move(a)), async(as), log(l) {}
  std::string_view name() const override { return id; }
  void reply(Done done) {
    log->push_back(id);
    if (async) later = std::move(done);
    else done(answer);
  }
  void mail(const Envelope&, Done done) override { reply(std::move(done)); }
  void rcpt(const Envelope&, const std::string&, Done done) override { reply(std::move(done)); }
  void data_end(const Envelope&, SpoolRef, Done done) override { reply(std::move(done)); }
  void cancel() override { cancelled = true; later = nullptr; }
};

Chain make(std::vector<std::pair<Scripted*, bool>> list) {
  std::vector<Chain::Entry> entries;
  for (auto& [p, required] : list) entries.push_back({std::unique_ptr<Policy>(p), required});
  return Chain(std::move(entries));
}
}  // namespace

TEST_CASE("all pass: every policy runs in order, the verdict is pass") {
  std::vector<std::string> log;
  auto chain = make({{new Scripted("a", Verdict::pass(), &log), false}, {new Scripted("b", Verdict::pass(), &log), false}});
  int calls = 0;
  Verdict got = Verdict::fail(550, "5.0.0", "unset");
  chain.run(Chain::Hook::Mail, {}, "", nullptr, [&](Verdict v) { ++calls; got = v; });
  CHECK(calls == 1);
  CHECK(got.passed());
  CHECK(log == std::vector<std::string>{"a", "b"});
  CHECK_FALSE(chain.running());
}

TEST_CASE("the first fail stops the chain; later policies do not run") {
  std::vector<std::string> log;
  auto chain = make({{new Scripted("a", Verdict::fail(550, "5.7.1", "no"), &log), false},
                     {new Scripted("b", Verdict::pass(), &log), false}});
  Verdict got;
  chain.run(Chain::Hook::Rcpt, {}, "x@y", nullptr, [&](Verdict v) { got = v; });
  CHECK(got.action == Action::Fail);
  CHECK(got.reply.code == 550);
  CHECK(log == std::vector<std::string>{"a"});
}

TEST_CASE("required policies run after a fail, and the first fail wins") {
  std::vector<std::string> log;
  auto chain = make({{new Scripted("a", Verdict::fail(451, "4.7.1", "later"), &log), false},
                     {new Scripted("b", Verdict::pass(), &log), false},
                     {new Scripted("audit", Verdict::fail(550, "5.7.1", "audit says no"), &log), true}});
  Verdict got;
  chain.run(Chain::Hook::Mail, {}, "", nullptr, [&](Verdict v) { got = v; });
  CHECK(log == std::vector<std::string>{"a", "audit"});
  CHECK(got.reply.code == 451);
}

TEST_CASE("asynchronous answers resume the chain; done is called once") {
  std::vector<std::string> log;
  auto* a = new Scripted("a", Verdict::pass(), &log, true);
  auto* b = new Scripted("b", Verdict::fail(554, "5.7.1", "spam"), &log, true);
  auto chain = make({{a, false}, {b, false}});
  int calls = 0;
  Verdict got;
  chain.run(Chain::Hook::Mail, {}, "", nullptr, [&](Verdict v) { ++calls; got = v; });
  CHECK(calls == 0);
  CHECK(chain.running());
  Done da = a->later;
  da(Verdict::pass());
  CHECK(log == std::vector<std::string>{"a", "b"});
  da(Verdict::fail(550, "5.0.0", "answering twice is ignored"));
  CHECK(calls == 0);
  b->later(b->answer);
  CHECK(calls == 1);
  CHECK(got.reply.code == 554);
}

TEST_CASE("cancel: no done after it, the policy in flight is cancelled") {
  std::vector<std::string> log;
  auto* a = new Scripted("a", Verdict::pass(), &log, true);
  auto chain = make({{a, false}});
  int calls = 0;
  chain.run(Chain::Hook::Mail, {}, "", nullptr, [&](Verdict) { ++calls; });
  Done saved = a->later;
  chain.cancel();
  CHECK(a->cancelled);
  saved(Verdict::pass());  // a late answer after cancel is dropped
  CHECK(calls == 0);
  CHECK_FALSE(chain.running());
}

TEST_CASE("a policy's invalid reply never accepts: it becomes 451 4.3.0") {
  std::vector<std::string> log;
  Verdict bad{Action::Fail, dotgate::smtp::Reply::make(250, "2.0.0", "ok?"), ""};
  auto chain = make({{new Scripted("a", bad, &log), false}});
  Verdict got;
  chain.run(Chain::Hook::Mail, {}, "", nullptr, [&](Verdict v) { got = v; });
  CHECK(got.action == Action::Fail);
  CHECK(got.reply.code == 451);
  CHECK(got.reply.enhanced().value_or("") == "4.3.0");
}

TEST_CASE("a chain of many instant policies does not recurse") {
  std::vector<std::string> log;
  std::vector<Chain::Entry> entries;
  for (int i = 0; i < 20000; ++i) entries.push_back({std::make_unique<Scripted>("p", Verdict::pass(), &log), false});
  Chain chain(std::move(entries));
  int calls = 0;
  chain.run(Chain::Hook::Mail, {}, "", nullptr, [&](Verdict v) { calls += v.passed(); });
  CHECK(calls == 1);
  CHECK(log.size() == 20000);
}

namespace {
// Counts its own destruction, to prove an abandoned chain frees itself.
struct Tracked final : Policy {
  std::string id;
  bool async;
  std::vector<std::string>* log;
  int* destroyed;
  Done later;
  bool cancelled = false;
  Tracked(std::string i, bool as, std::vector<std::string>* l, int* d) : id(std::move(i)), async(as), log(l), destroyed(d) {}
  ~Tracked() override { ++*destroyed; }
  std::string_view name() const override { return id; }
  void data_end(const Envelope&, SpoolRef spool, Done done) override {
    log->push_back(id + ":" + spool->read_all());
    if (async) later = std::move(done);
    else done(Verdict::pass());
  }
  void cancel() override { cancelled = true; later = nullptr; }
};
}  // namespace

TEST_CASE("abandon: the policy in flight is cancelled, required ones still run, the chain frees itself") {
  std::vector<std::string> log;
  int destroyed = 0;
  auto* slow = new Tracked("slow", true, &log, &destroyed);
  auto* skipped = new Tracked("skipped", false, &log, &destroyed);
  auto* audit = new Tracked("audit", true, &log, &destroyed);
  std::vector<Chain::Entry> entries;
  // sequential: each waits for the one before (at data_end they would otherwise all start at once)
  entries.push_back({std::unique_ptr<Policy>(slow), false, true});
  entries.push_back({std::unique_ptr<Policy>(skipped), false, true});
  entries.push_back({std::unique_ptr<Policy>(audit), true, true});
  auto chain = std::make_unique<Chain>(std::move(entries));
  auto spool = std::make_shared<dotgate::spool::Spool>(1024, "/tmp");
  spool->append("body\r\n");
  int calls = 0;
  chain->run(Chain::Hook::DataEnd, {}, "", spool, [&](Verdict) { ++calls; });
  REQUIRE(log == std::vector<std::string>{"slow:body\r\n"});
  spool.reset();  // the session is gone: the run keeps the message alive
  Chain::abandon(std::move(chain));
  CHECK(slow->cancelled);
  CHECK(log == std::vector<std::string>{"slow:body\r\n", "audit:body\r\n"});  // "skipped" never ran
  CHECK(destroyed == 0);  // audit is still working
  Done finish = std::move(audit->later);
  finish(Verdict::pass());
  CHECK(destroyed == 3);  // the whole chain freed itself after the last required policy
  CHECK(calls == 0);      // nobody is told: the session is gone
}

TEST_CASE("abandon with nothing running frees the chain at once") {
  std::vector<std::string> log;
  int destroyed = 0;
  std::vector<Chain::Entry> entries;
  entries.push_back({std::make_unique<Tracked>("a", false, &log, &destroyed), true});
  auto chain = std::make_unique<Chain>(std::move(entries));
  Chain::abandon(std::move(chain));
  CHECK(destroyed == 1);
  CHECK(log.empty());
}

// ---- data_end: concurrent verdict services -------------------------------------------------------

namespace {
Chain make_data_end(std::vector<std::tuple<Scripted*, bool, bool>> list) {
  std::vector<Chain::Entry> entries;
  for (auto& [p, required, sequential] : list) entries.push_back({std::unique_ptr<Policy>(p), required, sequential});
  return Chain(std::move(entries));
}
auto some_spool() {
  auto spool = std::make_shared<dotgate::spool::Spool>(1024, "/tmp");
  spool->append("m\r\n");
  return spool;
}
}  // namespace

TEST_CASE("data_end: independent policies are all asked at once; the verdict waits for all of them") {
  std::vector<std::string> log;
  auto* a = new Scripted("a", Verdict::pass(), &log, true);
  auto* b = new Scripted("b", Verdict::pass(), &log, true);
  auto* c = new Scripted("c", Verdict::pass(), &log, true);
  auto chain = make_data_end({{a, false, false}, {b, false, false}, {c, false, false}});
  int calls = 0;
  Verdict got = Verdict::fail(550, "5.0.0", "unset");
  chain.run(Chain::Hook::DataEnd, {}, "", some_spool(), [&](Verdict v) { ++calls; got = v; });
  CHECK(log == std::vector<std::string>{"a", "b", "c"});  // all three before any answered
  Done dc = c->later, da = a->later, db = b->later;
  dc(Verdict::pass());
  da(Verdict::pass());
  CHECK(calls == 0);
  db(Verdict::pass());
  CHECK(calls == 1);
  CHECK(got.passed());
  REQUIRE(chain.results().size() == 3);
  CHECK(chain.results()[0].name == "a");
  CHECK(chain.results()[2].outcome == "pass");
}

TEST_CASE("data_end: the first fail in configured order wins, whatever order the answers come in") {
  std::vector<std::string> log;
  auto* a = new Scripted("a", Verdict::pass(), &log, true);
  auto* b = new Scripted("b", Verdict::pass(), &log, true);
  auto* c = new Scripted("c", Verdict::pass(), &log, true);
  auto chain = make_data_end({{a, false, false}, {b, false, false}, {c, false, false}});
  Verdict got;
  int calls = 0;
  chain.run(Chain::Hook::DataEnd, {}, "", some_spool(), [&](Verdict v) { ++calls; got = v; });
  Done dc = c->later, db = b->later;
  dc(Verdict::fail(550, "5.7.1", "c says no"));
  CHECK(calls == 0);  // a or b may still fail first in order
  db(Verdict::fail(451, "4.7.1", "b says later"));
  CHECK(calls == 0);  // a still decides
  a->later(Verdict::pass());
  CHECK(calls == 1);
  CHECK(got.reply.code == 451);  // b's: the first fail in configured order
}

TEST_CASE("data_end: once the verdict is certain, the policies still working are cancelled") {
  std::vector<std::string> log;
  auto* a = new Scripted("a", Verdict::pass(), &log, true);
  auto* b = new Scripted("b", Verdict::pass(), &log, true);
  auto* audit = new Scripted("audit", Verdict::pass(), &log, true);
  auto chain = make_data_end({{a, false, false}, {b, false, false}, {audit, true, false}});
  Verdict got;
  int calls = 0;
  chain.run(Chain::Hook::DataEnd, {}, "", some_spool(), [&](Verdict v) { ++calls; got = v; });
  a->later(Verdict::fail(554, "5.7.1", "spam"));
  CHECK(b->cancelled);            // cannot change the verdict any more
  CHECK_FALSE(audit->cancelled);  // required: always runs to the end
  CHECK(calls == 0);              // and the run waits for it
  audit->later(Verdict::pass());
  CHECK(calls == 1);
  CHECK(got.reply.code == 554);
  REQUIRE(chain.results().size() == 3);
  CHECK(chain.results()[1].outcome == "cancelled");
  CHECK(chain.results()[0].outcome == "reject");
}

TEST_CASE("data_end: a sequential policy waits for the ones before it and is skipped after a fail") {
  std::vector<std::string> log;
  auto* a = new Scripted("a", Verdict::pass(), &log, true);
  auto* expensive = new Scripted("expensive", Verdict::pass(), &log, true);
  auto* free = new Scripted("free", Verdict::pass(), &log, true);
  auto chain = make_data_end({{a, false, false}, {expensive, false, true}, {free, false, false}});
  int calls = 0;
  Verdict got;
  chain.run(Chain::Hook::DataEnd, {}, "", some_spool(), [&](Verdict v) { ++calls; got = v; });
  CHECK(log == std::vector<std::string>{"a", "free"});  // "expensive" waits for "a"
  free->later(Verdict::pass());
  a->later(Verdict::pass());
  CHECK(log == std::vector<std::string>{"a", "free", "expensive"});
  expensive->later(Verdict::fail(550, "5.7.1", "no"));
  CHECK(calls == 1);
  CHECK(got.reply.code == 550);

  // Second run: "a" fails, so the sequential one is never asked.
  log.clear();
  calls = 0;
  chain.run(Chain::Hook::DataEnd, {}, "", some_spool(), [&](Verdict v) { ++calls; got = v; });
  a->later(Verdict::fail(451, "4.7.1", "later"));
  CHECK(free->cancelled);
  CHECK(calls == 1);
  CHECK(log == std::vector<std::string>{"a", "free"});
  CHECK(got.reply.code == 451);
}

TEST_CASE("data_end: the edits of every passing policy are merged in configured order") {
  std::vector<std::string> log;
  Verdict first = Verdict::pass();
  first.edit.add_headers.push_back({"X-Spam", "Yes"});
  Verdict second = Verdict::pass();
  second.edit.remove_headers.push_back("Subject");
  second.edit.add_headers.push_back({"Subject", "[SPAM] hi"});
  auto chain = make_data_end({{new Scripted("a", first, &log), false, false}, {new Scripted("b", second, &log), false, false}});
  Verdict got;
  chain.run(Chain::Hook::DataEnd, {}, "", some_spool(), [&](Verdict v) { got = v; });
  REQUIRE(got.passed());
  REQUIRE(got.edit.add_headers.size() == 2);
  CHECK(got.edit.add_headers[0].first == "X-Spam");
  CHECK(got.edit.add_headers[1].second == "[SPAM] hi");
  CHECK(got.edit.remove_headers == std::vector<std::string>{"Subject"});
}

TEST_CASE("data_end: abandon cancels every non-required policy in flight") {
  std::vector<std::string> log;
  auto* a = new Scripted("a", Verdict::pass(), &log, true);
  auto* b = new Scripted("b", Verdict::pass(), &log, true);
  auto* audit = new Scripted("audit", Verdict::pass(), &log, true);
  std::vector<Chain::Entry> entries;
  entries.push_back({std::unique_ptr<Policy>(a), false});
  entries.push_back({std::unique_ptr<Policy>(b), false});
  entries.push_back({std::unique_ptr<Policy>(audit), true});
  auto chain = std::make_unique<Chain>(std::move(entries));
  int calls = 0;
  chain->run(Chain::Hook::DataEnd, {}, "", some_spool(), [&](Verdict) { ++calls; });
  Chain::abandon(std::move(chain));
  CHECK(a->cancelled);
  CHECK(b->cancelled);
  CHECK_FALSE(audit->cancelled);
  Done finish = std::move(audit->later);
  finish(Verdict::pass());  // the chain frees itself here (ASan would see a leak otherwise)
  CHECK(calls == 0);
}

TEST_CASE("settled: a certain refusal is known while a required policy still works") {
  std::vector<std::string> log;
  auto* a = new Scripted("a", Verdict::pass(), &log, true);
  auto* b = new Scripted("b", Verdict::pass(), &log, true);
  auto* audit = new Scripted("audit", Verdict::pass(), &log, true);
  auto chain = make_data_end({{a, false, false}, {b, false, false}, {audit, true, false}});
  chain.run(Chain::Hook::DataEnd, {}, "", some_spool(), [&](Verdict) {});
  CHECK_FALSE(chain.settled().has_value());
  b->later(Verdict::fail(550, "5.7.1", "b says no"));
  CHECK_FALSE(chain.settled().has_value());  // a may still fail first
  a->later(Verdict::pass());
  REQUIRE(chain.settled().has_value());  // audit still works, but the verdict is b's
  CHECK(chain.settled()->reply.code == 550);
  audit->later(Verdict::pass());
  CHECK_FALSE(chain.settled().has_value());  // the run is over
}
