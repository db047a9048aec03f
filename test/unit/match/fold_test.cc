// Unit tests for lib/match/fold: one normal form for phrases and text.
#include <doctest/doctest.h>

#include <random>
#include <string>

#include "lib/match/fold.h"

using namespace dotgate::match;

TEST_CASE("fold: ASCII is lowered, whitespace runs become one space") {
  CHECK(fold("Hello WORLD") == "hello world");
  CHECK(fold("online\r\n\t  casino") == "online casino");
  CHECK(fold("a\x01\x7f" "b") == "a b");  // controls separate words
  CHECK(fold("  lead") == " lead");
  CHECK(fold("") == "");
}

TEST_CASE("fold: Unicode case folding, both ways of writing a word meet") {
  CHECK(fold("\xC3\x9C" "BER") == "\xC3\xBC" "ber");                  // ÜBER -> über
  CHECK(fold("\xC3\xBC" "ber") == "\xC3\xBC" "ber");
  CHECK(fold("STRASSE") == fold("Stra\xC3\x9F" "e"));                   // ß folds to ss
  CHECK(fold("\xD0\x9F\xD0\xA0\xD0\x98\xD0\x92\xD0\x95\xD0\xA2") ==     // ПРИВЕТ
        "\xD0\xBF\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82");            // привет
  CHECK(fold("\xCE\x9F\xCE\x94\xCE\x9F\xCE\xA3") == fold("\xCE\xBF\xCE\xB4\xCE\xBF\xCF\x82"));  // ΟΔΟΣ, οδος (final sigma)
  CHECK(fold("\xF0\x90\x90\x80") == "\xF0\x90\x90\xA8");                 // Deseret, outside the BMP
}

TEST_CASE("fold: compatibility forms are their plain letters") {
  CHECK(fold("\xEF\xBD\x96\xEF\xBD\x89\xEF\xBD\x81\xEF\xBD\x87\xEF\xBD\x92\xEF\xBD\x81") == "viagra");  // fullwidth
  CHECK(fold("\xEF\xAC\x81" "nance") == "finance");  // the fi ligature
  CHECK(fold("\xE2\x84\x83") == "\xC2\xB0" "c");      // ℃: NFKC gives an upper-case C, lowered too
}

TEST_CASE("fold: invisible characters are dropped, Unicode spaces are spaces") {
  CHECK(fold("via\xC2\xAD" "gra") == "viagra");             // soft hyphen
  CHECK(fold("via\xE2\x80\x8B" "gra") == "viagra");         // zero-width space
  CHECK(fold("vi\xE2\x80\x8D" "ag\xEF\xBB\xBF" "ra") == "viagra");
  CHECK(fold("online\xC2\xA0\xE2\x80\x83" "casino") == "online casino");  // NBSP, em space
}

TEST_CASE("fold: bytes that are not UTF-8 become a separator") {
  CHECK(fold("ab\xFF" "cd") == "ab cd");
  CHECK(fold("ab\xC3") == "ab ");
  CHECK(fold("\xE0\x80\x80x") == " x");  // overlong: never a letter; the run is one space
}

TEST_CASE("fold: word characters for the boundary rule") {
  CHECK(is_word_char('a'));
  CHECK(is_word_char('Z'));
  CHECK(is_word_char('7'));
  CHECK(!is_word_char(' '));
  CHECK(!is_word_char('-'));
  CHECK(!is_word_char('_'));
  CHECK(is_word_char(0xFC));    // ü
  CHECK(is_word_char(0x0436));  // ж
  CHECK(is_word_char(0x0301));  // a combining accent belongs to its letter
  CHECK(!is_word_char(0x6F22)); // 漢: Han is written without spaces between words
  CHECK(!is_word_char(0x0E01)); // Thai, likewise
  CHECK(is_word_char(0xD55C));  // Hangul uses spaces
  CHECK(!is_word_char(0x2019)); // ’
}

TEST_CASE("fold: word_char_before / word_char_at on folded text") {
  std::string t = fold("x \xC3\xBC" "ber!");  // "x über!"
  CHECK(word_char_at(t, 0));
  CHECK(!word_char_at(t, 1));
  CHECK(word_char_at(t, 2));       // ü, two bytes
  CHECK(word_char_before(t, 4));   // the ü ends at 4
  CHECK(!word_char_before(t, 0));
  CHECK(!word_char_at(t, t.size()));
  CHECK(!word_char_at(t, t.size() - 1));  // "!"
  CHECK(word_char_before(t, t.size() - 1));
}

namespace {
// The rules of fold.h for ASCII, one byte at a time: what the word-at-a-time path must equal.
std::string reference_ascii(const std::string& in, bool after_space) {
  std::string out;
  for (char ch : in) {
    auto b = static_cast<unsigned char>(ch);
    bool ws = b <= 0x20 || b == 0x7f;
    if (ws) {
      if (!after_space) out.push_back(' ');
      after_space = true;
      continue;
    }
    out.push_back(b >= 'A' && b <= 'Z' ? static_cast<char>(b + 32) : ch);
    after_space = false;
  }
  return out;
}
}  // namespace

TEST_CASE("fold: the eight-bytes-at-a-time ASCII path equals the byte rules") {
  std::mt19937 rng(7);
  const std::string interesting = std::string("aZAz@[`{ \t\r\n\x01\x1f\x7f~09.") + "\x20\x21";
  for (int round = 0; round < 3000; ++round) {
    std::string in;
    std::size_t len = rng() % 40;
    for (std::size_t k = 0; k < len; ++k)
      in.push_back(rng() % 2 ? interesting[rng() % interesting.size()] : static_cast<char>(rng() % 128));
    CHECK(fold(in) == reference_ascii(in, false));
    std::string out = "x ";  // folding appended after a space continues its run
    fold_append(in, out);
    CHECK(out == "x " + reference_ascii(in, true));
  }
  // Every byte value at every position of an 8-byte window.
  for (int b = 0; b < 128; ++b)
    for (int at = 0; at < 9; ++at) {
      std::string in(9, 'Q');
      in[at] = static_cast<char>(b);
      CHECK(fold(in) == reference_ascii(in, false));
    }
}
