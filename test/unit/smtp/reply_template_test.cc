// test/unit/smtp/reply_template_test.cc — lib/smtp/reply_template: what parses (and why not), what
// each template expands to with a table of groups, the output cap and its UTF-8-safe cut.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "lib/smtp/reply_template.h"

using dotgate::smtp::ReplyTemplate;

TEST_CASE("reply template: expansion table") {
  struct Row {
    const char* tmpl;
    std::vector<std::string_view> groups;
    const char* out;
    std::size_t max_group;
  };
  const std::vector<Row> rows = {
      {"", {"orig"}, "", 0},
      {"plain text", {"orig"}, "plain text", 0},
      {"$0", {"the original"}, "the original", 0},
      {"Sorry: $0", {"no such user"}, "Sorry: no such user", 0},
      {"<$1> is $2", {"all", "bob", "unknown"}, "<bob> is unknown", 2},
      {"$2$1", {"x", "a", "b"}, "ba", 2},
      {"$10", {"zero", "one"}, "one0", 1},  // one digit, as Perl: $1 then "0"
      {"${10}!", {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "ten"}, "ten!", 10},
      {"${1}0", {"x", "one"}, "one0", 1},
      {"${099}", {"x"}, "", 99},  // an unset group is empty
      {"$3", {"x", "a"}, "", 3},
      {"cost $$5", {"x"}, "cost $5", 0},
      {"$$$1$$", {"x", "v"}, "$v$", 1},
      {"tab\there", {"x"}, "tab\there", 0},
      {"UTF-8 \xc3\xa9t\xc3\xa9 $0", {"ok"}, "UTF-8 \xc3\xa9t\xc3\xa9 ok", 0},
      {"$0", {"two\nlines"}, "two\nlines", 0},  // $0 may hold the lines of a multi-line reply
  };
  for (const auto& row : rows) {
    CAPTURE(row.tmpl);
    std::string error;
    auto t = ReplyTemplate::parse(row.tmpl, &error);
    REQUIRE_MESSAGE(t, error);
    CHECK(t->expand(row.groups) == row.out);
    CHECK(t->max_group() == row.max_group);
  }
}

TEST_CASE("reply template: refusals say what and where") {
  struct Row {
    std::string tmpl;
    const char* error;
  };
  const std::vector<Row> rows = {
      {"$", "'$' at the end (write $$ for a dollar) at offset 0"},
      {"price: 5$", "'$' at the end (write $$ for a dollar) at offset 8"},
      {"$x", "'$' must be followed by a digit, {number} or $ at offset 0"},
      {"a $name", "'$' must be followed by a digit, {number} or $ at offset 2"},
      {"${}", "expected ${number} at offset 0"},
      {"${12", "expected ${number} at offset 0"},
      {"${1234}", "expected ${number} at offset 0"},  // at most three digits
      {"${a}", "expected ${number} at offset 0"},
      {"${100}", "group number over 99 at offset 0"},
      {"line\r\nbreak", "control character at offset 4"},
      {"bare\nLF", "control character at offset 4"},
      {std::string("nul\0x", 5), "control character at offset 3"},
      {"del\x7f", "control character at offset 3"},
      {"esc\x1b[0m", "control character at offset 3"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.tmpl);
    std::string error;
    CHECK_FALSE(ReplyTemplate::parse(row.tmpl, &error));
    CHECK(error == row.error);
  }
}

TEST_CASE("reply template: leading literal and $0 first (the greeting's domain check)") {
  auto a = ReplyTemplate::parse("mx.example.org ready $1", nullptr);
  REQUIRE(a);
  CHECK(a->leading_literal() == "mx.example.org ready ");
  CHECK_FALSE(a->starts_with_original());
  auto b = ReplyTemplate::parse("$0 (via dotgate)", nullptr);
  REQUIRE(b);
  CHECK(b->leading_literal().empty());
  CHECK(b->starts_with_original());
  auto c = ReplyTemplate::parse("$1 x", nullptr);
  REQUIRE(c);
  CHECK_FALSE(c->starts_with_original());
  auto d = ReplyTemplate::parse("", nullptr);
  REQUIRE(d);
  CHECK(d->leading_literal().empty());
  CHECK_FALSE(d->starts_with_original());
}

TEST_CASE("reply template: output capped at kMaxOutput, never inside a UTF-8 sequence") {
  std::string big(3000, 'a');
  auto t = ReplyTemplate::parse("$0$0$0$0", nullptr);
  REQUIRE(t);
  std::vector<std::string_view> groups = {big};
  CHECK(t->expand(groups).size() == ReplyTemplate::kMaxOutput);

  // A two-octet character straddling the cap is left out whole.
  for (std::size_t pad = 0; pad < 4; ++pad) {
    CAPTURE(pad);
    std::string text(ReplyTemplate::kMaxOutput - 1 - pad, 'b');
    for (int i = 0; i < 4; ++i) text += "\xc3\xa9";
    std::vector<std::string_view> g = {text};
    std::string out = t->expand(g);
    CHECK(out.size() <= ReplyTemplate::kMaxOutput);
    CHECK(out.size() + 2 > ReplyTemplate::kMaxOutput);
    CHECK(text.compare(0, out.size(), out) == 0);
    // Whole characters only: the last octet is ASCII or ends a sequence.
    unsigned char last = static_cast<unsigned char>(out.back());
    CHECK((last < 0x80 || (last & 0xC0) == 0x80));
    if (last >= 0x80) CHECK((static_cast<unsigned char>(out[out.size() - 2]) & 0xE0) == 0xC0);
  }
}
