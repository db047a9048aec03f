// Unit tests for lib/match/matcher: whole-word, case-insensitive Aho–Corasick, checked against
// a naive reference on random text.
#include <doctest/doctest.h>

#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "lib/match/fold.h"
#include "lib/match/matcher.h"

using namespace dotgate::match;

namespace {

// entry phrase -> count, for readable checks.
std::map<std::string, std::uint32_t> hits(const Matcher& m, std::string_view text) {
  std::map<std::string, std::uint32_t> out;
  for (const auto& h : m.match(text)) out[m.entries()[h.entry].phrase] = h.count;
  return out;
}

Matcher make(std::vector<std::string> phrases) {
  std::vector<Entry> entries;
  for (auto& p : phrases) entries.push_back({p, 1});
  return Matcher(std::move(entries));
}

using Counts = std::map<std::string, std::uint32_t>;

}  // namespace

TEST_CASE("matcher: case-insensitive, ASCII and beyond") {
  auto m = make({"viagra", "\xC3\xBC" "ber", "\xD0\xB2\xD0\xB8\xD0\xB0\xD0\xB3\xD1\x80\xD0\xB0"});  // über, виагра
  CHECK(hits(m, "Buy VIAGRA now, ViAgRa!") == Counts{{"viagra", 2}});
  CHECK(hits(m, "\xC3\x9C" "BER alles") == Counts{{"\xC3\xBC" "ber", 1}});  // ÜBER
  CHECK(hits(m, "\xD0\x92\xD0\x98\xD0\x90\xD0\x93\xD0\xA0\xD0\x90!") ==
        Counts{{"\xD0\xB2\xD0\xB8\xD0\xB0\xD0\xB3\xD1\x80\xD0\xB0", 1}});  // ВИАГРА!
  auto upper = make({"STRASSE"});
  CHECK(hits(upper, "die Stra\xC3\x9F" "e") == Counts{{"STRASSE", 1}});
}

TEST_CASE("matcher: whole words only") {
  auto m = make({"class", "win", "$$$", "c++"});
  CHECK(hits(m, "a classic subclass").empty());
  CHECK(hits(m, "a class. (class) class") == Counts{{"class", 3}});
  CHECK(hits(m, "win2 2win win") == Counts{{"win", 1}});
  CHECK(hits(m, "make $$$ now") == Counts{{"$$$", 1}});
  CHECK(hits(m, "a$$$b").empty());  // a letter touches it
  CHECK(hits(m, "learn c++.") == Counts{{"c++", 1}});
  CHECK(hits(m, "win_").size() == 1);  // '_' is no letter or digit
  CHECK(hits(m, "\xC3\xBC" "win").empty());  // ü is a letter
  CHECK(hits(m, "win\xCC\x81").empty());      // nor does a combining accent end the word
}

TEST_CASE("matcher: scripts without spaces match inside runs") {
  auto m = make({"\xE5\x8F\x91\xE7\xA5\xA8"});  // 发票 (invoice)
  CHECK(hits(m, "\xE8\xAF\xB7\xE5\xBC\x80\xE5\x8F\x91\xE7\xA5\xA8\xE8\xB0\xA2\xE8\xB0\xA2").size() == 1);
}

TEST_CASE("matcher: overlapping patterns all hit") {
  auto m = make({"online casino", "casino", "online", "casino bonus"});
  CHECK(hits(m, "best online casino bonus") ==
        Counts{{"online casino", 1}, {"casino", 1}, {"online", 1}, {"casino bonus", 1}});
  auto rep = make({"ab ab"});
  CHECK(hits(rep, "ab ab ab") == Counts{{"ab ab", 2}});
  auto nested = make({"he", "she", "hers", "his"});
  CHECK(hits(nested, "she hers his he").size() == 4);
}

TEST_CASE("matcher: phrases match across any run of whitespace") {
  auto m = make({"online casino", "free   money"});
  CHECK(hits(m, "online\r\n\t   casino") == Counts{{"online casino", 1}});
  CHECK(hits(m, "FREE\nMONEY") == Counts{{"free   money", 1}});
  CHECK(hits(m, "online\xC2\xA0" "casino") == Counts{{"online casino", 1}});  // NBSP
  CHECK(hits(m, "onlinecasino").empty());
}

TEST_CASE("matcher: invisible characters inside a word do not hide it") {
  auto m = make({"viagra"});
  CHECK(hits(m, "via\xE2\x80\x8B" "gra") == Counts{{"viagra", 1}});
  CHECK(hits(m, "v\xC2\xAD" "i\xC2\xAD" "agra") == Counts{{"viagra", 1}});
  CHECK(hits(m, "\xEF\xBD\x96\xEF\xBD\x89\xEF\xBD\x81\xEF\xBD\x87\xEF\xBD\x92\xEF\xBD\x81") == Counts{{"viagra", 1}});
}

TEST_CASE("matcher: scores and separate texts") {
  Matcher m({{"casino", 2.5}, {"online casino", 1}, {"free", -1}});
  Matcher::Scan scan(m);
  scan.feed("online casino");
  scan.feed("casino, free");
  auto h = scan.hits();
  REQUIRE(h.size() == 3);
  CHECK(h[0].entry == 0);
  CHECK(h[0].count == 2);
  CHECK(h[1].count == 1);
  CHECK(h[2].count == 1);
  CHECK(scan.score() == doctest::Approx(2.5 * 2 + 1 - 1));
  // A phrase never spans two texts.
  Matcher::Scan split(m);
  split.feed("online");
  split.feed("casino");
  CHECK(split.hits().size() == 1);
}

TEST_CASE("matcher: bad phrases are refused") {
  CHECK_THROWS_AS(make({"ok", "   "}), std::invalid_argument);
  CHECK_THROWS_AS(make({"\xC2\xAD\xE2\x80\x8B"}), std::invalid_argument);  // invisible only
  CHECK_THROWS_AS(make({"bad\xFF"}), std::invalid_argument);
  CHECK(make({}).match("anything").empty());
}

TEST_CASE("matcher: long texts (interleaved slices) count every hit once, at the cuts too") {
  auto m = make({"online casino", "casino", "x"});
  // Hits at every offset around where the slices meet.
  std::string text;
  while (text.size() < 20000) text += "online casino x ";
  auto h = hits(m, text);
  std::uint32_t n = static_cast<std::uint32_t>(text.size() / 16);
  CHECK(h == Counts{{"online casino", n}, {"casino", n}, {"x", n}});
  for (std::size_t shift = 1; shift < 16; ++shift) {
    std::string shifted = std::string(shift, ' ') + text;
    CHECK(hits(m, shifted) == h);
  }
}

TEST_CASE("matcher: duplicate phrases are separate entries") {
  auto m = make({"Casino", "casino"});
  CHECK(m.match("casino").size() == 2);
}

namespace {

// The reference: every occurrence of every folded phrase in the folded text, boundaries checked.
std::vector<std::uint32_t> naive(const std::vector<Entry>& entries, std::string_view text) {
  std::string t = fold(text);
  std::vector<std::uint32_t> counts(entries.size(), 0);
  for (std::size_t i = 0; i < entries.size(); ++i) {
    std::string p = fold(entries[i].phrase);
    p = p.substr(p.find_first_not_of(' '));
    p = p.substr(0, p.find_last_not_of(' ') + 1);
    for (std::size_t at = t.find(p); at != std::string::npos; at = t.find(p, at + 1))
      if (!word_char_before(t, at) && !word_char_at(t, at + p.size())) ++counts[i];
  }
  return counts;
}

std::vector<std::uint32_t> counts_of(const Matcher& m, std::string_view text) {
  std::vector<std::uint32_t> out(m.entries().size(), 0);
  for (const auto& h : m.match(text)) out[h.entry] = h.count;
  return out;
}

}  // namespace

TEST_CASE("matcher: thousands of patterns agree with a naive reference on random text") {
  // A small alphabet, so that phrases share prefixes, overlap and hit often; some upper case,
  // non-ASCII letters, whitespace and punctuation.
  const std::vector<std::string> alphabet = {"a", "b", "c", "A", "B", " ", " ", "\n", "\t ", ".", "1",
                                             "\xC3\xBC", "\xC3\x9C", "\xC3\x9F", "\xD0\xB6", "\xE2\x80\x8B"};
  std::mt19937 rng(20240521);
  auto word = [&](std::size_t max_len) {
    std::string s;
    std::size_t len = 1 + rng() % max_len;
    for (std::size_t k = 0; k < len; ++k) s += alphabet[rng() % alphabet.size()];
    return s;
  };
  std::vector<Entry> entries;
  while (entries.size() < 3000) {
    std::string p = word(7);
    std::string f = fold(p);
    if (f.find_first_not_of(' ') == std::string::npos) continue;
    entries.push_back({p, 1});
  }
  Matcher dense(entries);
  Matcher sparse(entries, 1);  // only the root row dense: the sparse path everywhere else
  CHECK(dense.dense_states() == dense.states());
  CHECK(sparse.dense_states() == 1);
  // Short texts are scanned in one slice, long ones in interleaved slices: both checked.
  for (int round = 0; round < 20; ++round) {
    std::string text;
    int words = round % 2 ? 400 : 4000;
    for (int k = 0; k < words; ++k) text += word(5);
    auto expected = naive(entries, text);
    CHECK(counts_of(dense, text) == expected);
    CHECK(counts_of(sparse, text) == expected);
  }
}
