// test/unit/config/trade_notes_test.cc — config::trade_notes: the defaults say nothing; each speed
// setting says what it trades, with the figures of that config (per worker, total); a
// max_sessions that another setting makes useless says why.
#include <doctest/doctest.h>

#include <string>

#include "lib/config/config.h"
#include "lib/config/trade_notes.h"

using namespace dotgate::config;
using nlohmann::json;

namespace {

std::vector<std::string> notes_of(const std::string& text, int workers) {
  return trade_notes(parse_config(json::parse(text)), workers);
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("trade notes: the defaults trade nothing") {
  CHECK(notes_of("{}", 2).empty());
  CHECK(notes_of(R"({"downstream": {"pool": {"size": 0}}, "busy_poll_us": 0})", 8).empty());
}

TEST_CASE("trade notes: pool size counts the idle MTA connections of every worker") {
  auto notes = notes_of(R"({"downstream": {"pool": {"size": 3, "max_idle": 45}}})", 4);
  REQUIRE(notes.size() == 1);
  CHECK(contains(notes[0], "downstream.pool.size=3:"));
  CHECK(contains(notes[0], "holds 12 idle connections (3 per worker, 4 workers)"));
  CHECK(contains(notes[0], "up to 45 s"));
}

TEST_CASE("trade notes: max_sessions > 1 says what the MTA sees") {
  auto notes = notes_of(R"({"downstream": {"pool": {"size": 2, "max_sessions": 100}}})", 1);
  REQUIRE(notes.size() == 2);
  CHECK(contains(notes[1], "downstream.pool.max_sessions=100: the MTA sees several clients"));
  CHECK(contains(notes[1], "count them together"));
}

TEST_CASE("trade notes: max_sessions without a pool or with XCLIENT has no effect") {
  auto no_pool = notes_of(R"({"downstream": {"pool": {"max_sessions": 10}}})", 1);
  REQUIRE(no_pool.size() == 1);
  CHECK(contains(no_pool[0], "max_sessions=10: no effect without downstream.pool.size"));
  auto xclient = notes_of(R"({"downstream": {"xclient": true, "pool": {"size": 1, "max_sessions": 10}}})", 1);
  REQUIRE(xclient.size() == 2);
  CHECK(contains(xclient[1], "no effect with downstream.xclient"));
  CHECK_FALSE(contains(xclient[1], "several clients"));
}

TEST_CASE("trade notes: busy polling names its CPU cost per worker") {
  auto notes = notes_of(R"({"busy_poll_us": 100})", 2);
  REQUIRE(notes.size() == 1);
  CHECK(contains(notes[0], "busy_poll_us=100: while mail flows each of the 2 workers may spend up to a core"));
}
