// log::Line against what the log wrote before it existed: a nlohmann::json object of the fields,
// text mode `msg key=value` (a value bare when simple, else JSON-quoted; anything not a string as
// compact JSON), JSON mode one object. Strings cover the cases the fast path must hand over:
// quotes, backslashes, control bytes, DEL, UTF-8, invalid UTF-8.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lib/log/line.h"

using dotgate::log::Line;
using nlohmann::json;

namespace {

std::string dump(const json& v) { return v.dump(-1, ' ', false, json::error_handler_t::replace); }

// The text form log::event() had before Line: fields in std::map order.
std::string old_text(std::string_view msg, const json& fields) {
  std::string line(msg);
  for (auto it = fields.begin(); it != fields.end(); ++it) {
    line += ' ';
    line += it.key();
    line += '=';
    const json& v = it.value();
    if (v.is_string()) {
      const auto& s = v.get_ref<const std::string&>();
      bool simple = !s.empty();
      for (unsigned char c : s)
        if (c <= ' ' || c == '"' || c == '=' || c >= 0x7f) simple = false;
      line += simple ? s : dump(json(s));
    } else {
      line += dump(v);
    }
  }
  return line;
}

const std::vector<std::string> kStrings = {
    "", "simple", "a@example.org", "with space", "quo\"te", "eq=ual", "back\\slash", "ctl\x01",
    "tab\there", "new\nline", "del\x7f", "utf8 \xc3\xa9t\xc3\xa9", "bad \xff\xfe utf8", "cut \xc3",
    "127.0.0.1:25", "250 2.0.0 Ok: queued as 4XyZ", "[{\"json\":1}]"};

}  // namespace

TEST_CASE("append_json_string gives nlohmann's dump for every kind of string") {
  for (const auto& s : kStrings) {
    std::string out;
    dotgate::log::append_json_string(out, s);
    CHECK_MESSAGE(out == dump(json(s)), s);
    CHECK_NOTHROW(json::parse(out));
  }
}

TEST_CASE("append_json_double gives nlohmann's form") {
  for (double d : {0.0, 0.01, 0.5, 5.0, 12.34, 99.99, 1e-5, 1795470982.3094108, 123456789012.5, 1e21, -3.25}) {
    std::string out;
    dotgate::log::append_json_double(out, d);
    CHECK_MESSAGE(out == dump(json(d)), d);
  }
  for (double d : {std::nan(""), std::numeric_limits<double>::infinity()}) {
    std::string out;
    dotgate::log::append_json_double(out, d);
    CHECK(out == "null");
  }
}

TEST_CASE("text mode: the line event() wrote for the same fields") {
  for (const auto& s : kStrings) {
    json fields = json::object();
    fields["a_str"] = s;
    fields["b_num"] = 4096;
    fields["c_list"] = json::array({s, "x:250"});
    Line line("info", "transaction", false, 0);
    line.str("a_str", s).num("b_num", 4096);
    std::string& list = line.json("c_list");
    list += '[';
    dotgate::log::append_json_string(list, s);
    list += ",\"x:250\"]";
    CHECK_MESSAGE(line.finish() == old_text("transaction", fields), s);
  }
}

TEST_CASE("JSON mode: one object, time, level and msg first, then the fields") {
  for (const auto& s : kStrings) {
    Line line("warn", "a \"quoted\" msg", true, 1795470982.25);
    line.str("helo", s).num("size", 18);
    line.json("rcpts") += "[\"r@example.net:250\"]";
    const std::string& text = line.finish();
    json parsed = json::parse(text);  // throws, failing the test, on anything but one JSON value
    REQUIRE(parsed.is_object());
    CHECK(parsed["time"] == 1795470982.25);
    CHECK(parsed["level"] == "warn");
    CHECK(parsed["msg"] == "a \"quoted\" msg");
    CHECK(parsed["helo"] == json::parse(dump(json(s))));  // as repaired by the replace handler
    CHECK(parsed["size"] == 18);
    CHECK(parsed["rcpts"] == json::array({"r@example.net:250"}));
    CHECK(text.rfind("{\"time\":1795470982.25,\"level\":\"warn\",\"msg\":", 0) == 0);
    CHECK(text.find('\n') == std::string::npos);
  }
}

TEST_CASE("text mode: an empty value is quoted, so the next key cannot be read as it") {
  Line line("info", "m", false, 0);
  line.str("empty", "").str("next", "v");
  CHECK(line.finish() == "m empty=\"\" next=v");
}
