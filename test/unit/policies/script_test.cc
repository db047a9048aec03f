// Unit tests for the script policy: a real uv loop runs real small shell scripts written to a
// temporary directory. Each test ends by checking the loop closes with nothing left open (the
// Run freed its handles, the child was reaped).
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "lib/config/config.h"
#include "lib/spool/spool.h"
#include "policies/registry.h"
#include "policies/script.h"

using namespace dotgate;
using namespace dotgate::policy;
namespace fs = std::filesystem;

namespace {

struct Fixture {
  uv_loop_t loop{};
  fs::path dir;

  Fixture() {
    uv_loop_init(&loop);
    char tmpl[] = "/tmp/dotgate-script-test-XXXXXX";
    dir = ::mkdtemp(tmpl);
  }
  ~Fixture() {
    // Nothing left open: every handle of every Run closed.
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
    fs::remove_all(dir);
  }

  std::string script(const std::string& name, const std::string& body) {
    fs::path p = dir / name;
    std::ofstream(p) << "#!/bin/sh\n" << body << "\n";
    fs::permissions(p, fs::perms::owner_all);
    return p.string();
  }

  // a member, not a temporary: GCC 12 at -O3 warns falsely (-Wmaybe-uninitialized) on Config{}
  config::Config defaults;

  std::unique_ptr<PolicyFactory> factory(nlohmann::json c) {
    c["type"] = "script";
    PolicyConfigReader reader(c, "policies[0]");
    reader.string("type", "");
    auto f = make_script_factory(reader, defaults);
    reader.finish();
    return f;
  }

  std::unique_ptr<Policy> policy(nlohmann::json c) { return factory(std::move(c))->create({&loop, dir.string()}); }

  // Runs data_end to completion; nullopt when done never came.
  std::optional<Verdict> judge(Policy& p, const std::string& wire = "Subject: t\r\n\r\nbody\r\n") {
    auto spool = std::make_shared<spool::Spool>(1 << 20, dir.string());
    spool->append(wire);
    Envelope env;
    env.client_address = "192.0.2.1:40000";
    env.helo = "client.example";
    env.mail_from = "a@example.org";
    env.recipients = {"b@example.net", "c@example.net"};
    env.message_size = wire.size();
    std::optional<Verdict> got;
    int calls = 0;
    p.data_end(env, spool, [&](Verdict v) {
      ++calls;
      got = std::move(v);
    });
    CHECK(!got.has_value());  // delivered from the loop, never inside data_end
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(calls <= 1);
    return got;
  }
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("script: exit status 0 passes") {
  Fixture f;
  auto p = f.policy({{"path", f.script("ok", "exit 0")}});
  auto v = f.judge(*p);
  REQUIRE(v);
  CHECK(v->passed());
}

TEST_CASE("script: exit status 1 tempfails with the first stdout line as text") {
  Fixture f;
  auto p = f.policy({{"path", f.script("t", "printf 'try later please\\r\\nsecond line\\n'; exit 1")}});
  auto v = f.judge(*p);
  REQUIRE(v);
  CHECK(v->action == Action::Fail);
  CHECK(v->reply.code == 451);
  CHECK(v->reply.serialize() == "451 4.7.1 try later please\r\n");
}

TEST_CASE("script: exit status 2 rejects, default text without output") {
  Fixture f;
  auto p = f.policy({{"path", f.script("r", "exit 2")}});
  auto v = f.judge(*p);
  REQUIRE(v);
  CHECK(v->action == Action::Fail);
  CHECK(v->reply.code == 550);
  CHECK(v->reply.enhanced().value_or("") == "5.7.1");
}

TEST_CASE("script: exit status 3 rejects and keeps") {
  Fixture f;
  auto p = f.policy({{"path", f.script("k", "echo spam found; exit 3")}});
  auto v = f.judge(*p);
  REQUIRE(v);
  CHECK(v->action == Action::FailKeep);
  CHECK(v->reply.serialize() == "550 5.7.1 spam found\r\n");
}

TEST_CASE("script: output is capped and stripped of control bytes") {
  Fixture f;
  auto p = f.policy({{"path", f.script("long", "printf 'a\\001b\\tc'; head -c 5000 /dev/zero | tr '\\0' x; exit 2")}});
  auto v = f.judge(*p);
  REQUIRE(v);
  REQUIRE(v->reply.lines.size() == 1);
  std::string line = v->reply.lines[0];
  CHECK(line.rfind("5.7.1 abcxxx", 0) == 0);
  CHECK(line.size() == 6 + ScriptPolicy::kMaxReplyText);
}

TEST_CASE("script: unknown status, crash and timeout follow on_error") {
  Fixture f;
  SUBCASE("unknown status -> tempfail 451 4.7.0 (default)") {
    auto p = f.policy({{"path", f.script("u", "echo ignored; exit 9")}});
    auto v = f.judge(*p);
    REQUIRE(v);
    CHECK(v->reply.code == 451);
    CHECK(v->reply.enhanced().value_or("") == "4.7.0");
    CHECK(v->reason.find("unknown exit status 9") != std::string::npos);
    CHECK(v->error == "status");
  }
  SUBCASE("crash -> reject 550 5.7.0") {
    auto p = f.policy({{"path", f.script("c", "kill -SEGV $$")}, {"on_error", "reject"}});
    auto v = f.judge(*p);
    REQUIRE(v);
    CHECK(v->reply.code == 550);
    CHECK(v->reply.enhanced().value_or("") == "5.7.0");
    CHECK(v->reason.find("signal 11") != std::string::npos);
    CHECK(v->error == "crash");
  }
  SUBCASE("timeout -> accept; the whole group is killed, quickly") {
    auto marker = f.dir / "survived";
    auto p = f.policy({{"path", f.script("h", "sleep 5; touch " + marker.string() + "; sleep 30")},
                       {"timeout", 0.3},
                       {"on_error", "accept"}});
    auto start = std::chrono::steady_clock::now();
    auto v = f.judge(*p);
    auto took = std::chrono::steady_clock::now() - start;
    REQUIRE(v);
    CHECK(v->passed());
    CHECK(took < std::chrono::seconds(3));
  }
  SUBCASE("timeout -> tempfail, the reason says so") {
    auto p = f.policy({{"path", f.script("h2", "exec sleep 30")}, {"timeout", 0.2}});
    auto v = f.judge(*p);
    REQUIRE(v);
    CHECK(v->reply.code == 451);
    CHECK(v->reason.find("timed out") != std::string::npos);
    CHECK(v->error == "timeout");
  }
  SUBCASE("spawn failure (program gone since load) -> on_error") {
    auto path = f.script("gone", "exit 0");
    auto p = f.policy({{"path", path}, {"on_error", "reject"}});
    fs::remove(path);
    auto v = f.judge(*p);
    REQUIRE(v);
    CHECK(v->reply.code == 550);
    CHECK(v->reason.find("spawn failed") != std::string::npos);
  }
}

TEST_CASE("script: the timeout kills the program's children too (its process group)") {
  Fixture f;
  auto marker = f.dir / "survived";
  // A background child that would outlive the shell if only the shell were killed.
  auto p = f.policy({{"path", f.script("bg", "(sleep 1; touch " + marker.string() + ") & exec sleep 30")},
                     {"timeout", 0.2}});
  auto v = f.judge(*p);
  REQUIRE(v);
  CHECK(v->reply.code == 451);
  ::usleep(1'500'000);
  CHECK_FALSE(fs::exists(marker));
}

TEST_CASE("script: environment, args, and the unstuffed message on fd 3") {
  Fixture f;
  auto out = f.dir / "seen";
  auto p = f.policy({{"path", f.script("env", "{ echo \"$DOTGATE_CLIENT_ADDRESS|$DOTGATE_HELO|$DOTGATE_SENDER|"
                                              "$DOTGATE_RECIPIENTS|$DOTGATE_SIZE|$DOTGATE_MESSAGE|$1|$2\"; "
                                              "} > " + out.string() + "; cat \"$DOTGATE_MESSAGE\" > " +
                                              out.string() + ".eml; read x || echo stdin-empty >> " +
                                              out.string())},
                     {"args", {"one", "two words"}}});
  std::string wire = "Subject: dots\r\n\r\n..leading\r\n...\r\nend\r\n";
  auto v = f.judge(*p, wire);
  REQUIRE(v);
  CHECK(v->passed());
  CHECK(slurp(out) == "192.0.2.1|client.example|a@example.org|b@example.net,c@example.net|" +
                          std::to_string(wire.size()) + "|/dev/fd/3|one|two words\nstdin-empty\n");
  CHECK(slurp(out.string() + ".eml") == "Subject: dots\r\n\r\n.leading\r\n..\r\nend\r\n");
  // The message file was unlinked: only the scripts and what they wrote are in the directory.
  for (const auto& e : fs::directory_iterator(f.dir)) CHECK(e.path().filename().string().rfind("dotgate-", 0) != 0);
}

TEST_CASE("script: cancel and destroy mid-run deliver nothing and leave nothing open") {
  Fixture f;
  auto path = f.script("slow", "exec sleep 30");
  auto spool = std::make_shared<spool::Spool>(1 << 20, f.dir.string());
  spool->append("x\r\n");
  int calls = 0;
  SUBCASE("cancel") {
    auto p = f.policy({{"path", path}});
    p->data_end(Envelope{}, spool, [&](Verdict) { ++calls; });
    uv_run(&f.loop, UV_RUN_NOWAIT);
    p->cancel();
    auto start = std::chrono::steady_clock::now();
    uv_run(&f.loop, UV_RUN_DEFAULT);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(3));
  }
  SUBCASE("destroy") {
    auto p = f.policy({{"path", path}});
    p->data_end(Envelope{}, spool, [&](Verdict) { ++calls; });
    p.reset();
    uv_run(&f.loop, UV_RUN_DEFAULT);
  }
  SUBCASE("done destroys the policy") {
    auto p = f.policy({{"path", f.script("quick", "exit 2")}});
    p->data_end(Envelope{}, spool, [&](Verdict v) {
      ++calls;
      CHECK(v.reply.code == 550);
      p.reset();
    });
    uv_run(&f.loop, UV_RUN_DEFAULT);
    CHECK(calls == 1);
    calls = 0;
  }
  CHECK(calls == 0);
}

TEST_CASE("script: the policy runs again for the next message") {
  Fixture f;
  auto p = f.policy({{"path", f.script("again", "exit 2")}});
  for (int i = 0; i < 3; ++i) {
    auto v = f.judge(*p);
    REQUIRE(v);
    CHECK(v->reply.code == 550);
  }
}

TEST_CASE("script: config refusals carry the key's path") {
  Fixture f;
  auto ok = f.script("ok", "exit 0");
  auto plain = f.dir / "plain";
  std::ofstream(plain) << "not executable\n";
  struct Case {
    nlohmann::json config;
    std::string error;
  };
  std::vector<Case> cases = {
      {nlohmann::json::object(), "policies[0].path: missing required key"},
      {{{"path", "bin/x"}}, "policies[0].path: expected absolute path"},
      {{{"path", 5}}, "policies[0].path: expected string"},
      {{{"path", (f.dir / "missing").string()}}, "policies[0].path: " + (f.dir / "missing").string() + ": No such file or directory"},
      {{{"path", plain.string()}}, "policies[0].path: " + plain.string() + ": not an executable file"},
      {{{"path", f.dir.string()}}, "policies[0].path: " + f.dir.string() + ": not an executable file"},
      {{{"path", ok}, {"timeout", 0}}, "policies[0].timeout: expected number in 0.001..3600"},
      {{{"path", ok}, {"timeout", "30"}}, "policies[0].timeout: expected number in 0.001..3600"},
      {{{"path", ok}, {"on_error", "ignore"}}, "policies[0].on_error: expected one of tempfail, accept, reject"},
      {{{"path", ok}, {"args", {1}}}, "policies[0].args[0]: expected string"},
      {{{"path", ok}, {"argv", {"x"}}}, "policies[0].argv: unknown key"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.config.dump());
    std::string error;
    try {
      f.factory(c.config);
    } catch (const config::ConfigError& e) {
      error = e.what();
    }
    CHECK(error == c.error);
  }
  // Through the registry, as the config loader does.
  config::Config cfg;
  cfg.policies = nlohmann::json::array({{{"type", "script"}, {"path", ok}, {"required", true}}});
  CHECK(PolicySet::build(cfg)->names() == std::vector<std::string>{"script"});
}
