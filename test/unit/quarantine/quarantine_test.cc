// Unit tests for the quarantine writer: the complete pair, the JSON fields, the size cap, an
// unwritable or missing directory, and no half file left behind by a refusal.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "lib/quarantine/quarantine.h"

using dotgate::quarantine::Quarantine;
using dotgate::quarantine::Record;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/dotgate-quarantine-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    fs::permissions(path, fs::perms::owner_all);
    fs::remove_all(path);
  }
  std::set<std::string> names() const {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator(path)) out.insert(e.path().filename().string());
    return out;
  }
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

Record sample(const std::string& id) {
  Record r;
  r.id = id;
  r.client = "192.0.2.7:40000";
  r.helo = "client.example";
  r.sender = "a@example.org";
  r.recipients = {"b@example.net", "c@example.net"};
  r.size = 42;
  r.reply = "550 5.7.1 spam";
  r.reason = "script exit 3 (keep)";
  r.time = 1700000000;
  return r;
}

}  // namespace

TEST_CASE("quarantine: store writes the message and its envelope, nothing else") {
  TempDir d;
  Quarantine q(d.path.string(), 1 << 20);
  std::string error;
  const std::string message = "Subject: kept\r\n\r\n.dot\r\n";
  REQUIRE(q.store(sample("id-1"), message, error));
  CHECK(error.empty());
  CHECK(d.names() == std::set<std::string>{"id-1.eml", "id-1.json"});
  CHECK(slurp(d.path / "id-1.eml") == message);
  auto j = nlohmann::json::parse(slurp(d.path / "id-1.json"));
  CHECK(j["id"] == "id-1");
  CHECK(j["client"] == "192.0.2.7:40000");
  CHECK(j["helo"] == "client.example");
  CHECK(j["sender"] == "a@example.org");
  CHECK(j["recipients"] == nlohmann::json::array({"b@example.net", "c@example.net"}));
  CHECK(j["size"] == 42);
  CHECK(j["reply"] == "550 5.7.1 spam");
  CHECK(j["reason"] == "script exit 3 (keep)");
  CHECK(j["time"] == "2023-11-14T22:13:20Z");
  CHECK(j["message_file"] == "id-1.eml");
  // Private to the operator: a quarantined message may hold anything.
  CHECK((fs::status(d.path / "id-1.eml").permissions() & fs::perms::others_read) == fs::perms::none);
  CHECK(q.usage() == static_cast<std::int64_t>(fs::file_size(d.path / "id-1.eml") + fs::file_size(d.path / "id-1.json")));
}

TEST_CASE("quarantine: the cap refuses, and leaves no file") {
  TempDir d;
  Quarantine q(d.path.string(), 2000);
  std::string error;
  REQUIRE(q.store(sample("a"), std::string(1000, 'x'), error));
  CHECK_FALSE(q.store(sample("b"), std::string(1000, 'y'), error));
  CHECK(error.find("quarantine full") != std::string::npos);
  CHECK(d.names() == std::set<std::string>{"a.eml", "a.json"});
  // A small one still fits.
  CHECK(q.store(sample("c"), "small", error));
}

TEST_CASE("quarantine: missing or unwritable directory, bad id") {
  std::string error;
  SUBCASE("missing") {
    Quarantine q("/nonexistent/dotgate-quarantine", 1 << 20);
    CHECK_FALSE(q.store(sample("a"), "m", error));
    CHECK(error.find("No such file or directory") != std::string::npos);
  }
  SUBCASE("unwritable") {
    // root ignores directory permissions (no early return: doctest would not find the subcases
    // after this one); "not a directory" below covers the same code path as root.
    if (::geteuid() != 0) {
      TempDir d;
      fs::permissions(d.path, fs::perms::owner_read | fs::perms::owner_exec);
      Quarantine q(d.path.string(), 1 << 20);
      CHECK_FALSE(q.store(sample("a"), "m", error));
      CHECK(d.names().empty());
    }
  }
  SUBCASE("not a directory (an I/O error that root cannot bypass)") {
    TempDir d;
    std::ofstream(d.path / "file") << "x";
    Quarantine q((d.path / "file").string(), 1 << 20);
    CHECK_FALSE(q.store(sample("a"), "m", error));
    CHECK(d.names() == std::set<std::string>{"file"});
  }
  SUBCASE("an id that would leave the directory") {
    TempDir d;
    Quarantine q(d.path.string(), 1 << 20);
    CHECK_FALSE(q.store(sample("../x"), "m", error));
    CHECK_FALSE(q.store(sample(""), "m", error));
    CHECK(d.names().empty());
  }
}

TEST_CASE("quarantine: a failure after the .eml is written leaves no complete-looking pair") {
  TempDir d;
  // The .json's final name is taken by a directory: its rename fails after the .eml's succeeded.
  fs::create_directory(d.path / "z.json");
  fs::create_directory(d.path / "z.json" / "keep");  // non-empty: rename(2) cannot replace it
  Quarantine q(d.path.string(), 1 << 20);
  std::string error;
  CHECK_FALSE(q.store(sample("z"), "m", error));
  CHECK(d.names() == std::set<std::string>{"z.json"});  // only the obstacle; no .eml, no .tmp-*
}

TEST_CASE("quarantine: ids are unique and safe as file names") {
  std::set<std::string> ids;
  for (int i = 0; i < 1000; ++i) {
    auto id = Quarantine::make_id();
    CHECK(id.find_first_not_of("0123456789abcdefghijklmnopqrstuvwxyzTZ-") == std::string::npos);
    ids.insert(id);
  }
  CHECK(ids.size() == 1000);
}
