// Unit tests for lib/mime/utf8: valid UTF-8 kept, other bytes read as Windows-1252.
#include <doctest/doctest.h>

#include "lib/mime/utf8.h"

using dotgate::mime::append_utf8;
using dotgate::mime::repair_utf8;

TEST_CASE("utf8: valid text is kept byte for byte") {
  CHECK(repair_utf8("plain ascii") == "plain ascii");
  CHECK(repair_utf8("\xC3\xBC" "ber \xE2\x82\xAC") == "\xC3\xBC" "ber \xE2\x82\xAC");
  CHECK(repair_utf8("") == "");
}

TEST_CASE("utf8: stray 8-bit bytes are read as Windows-1252") {
  CHECK(repair_utf8("caf\xE9") == "caf\xC3\xA9");                  // é in ISO-8859-1
  CHECK(repair_utf8("\x80 5") == "\xE2\x82\xAC 5");                 // € in Windows-1252
  CHECK(repair_utf8("\x93quoted\x94") == "\xE2\x80\x9Cquoted\xE2\x80\x9D");
  // Mixed: the valid sequence stays, the bad byte is converted.
  CHECK(repair_utf8("\xC3\xBC \xFC") == "\xC3\xBC \xC3\xBC");
  // A truncated sequence at the end.
  CHECK(repair_utf8("ab\xE2\x82") == "ab\xC3\xA2\xE2\x80\x9A");
}

TEST_CASE("utf8: NUL is a separator") { CHECK(repair_utf8(std::string("a\0b", 3)) == "a b"); }

TEST_CASE("utf8: append_utf8 replaces what is no character") {
  std::string s;
  append_utf8(0x41, s);
  append_utf8(0xD800, s);
  append_utf8(0x110000, s);
  append_utf8(0x1F600, s);
  CHECK(s == "A\xEF\xBF\xBD\xEF\xBF\xBD\xF0\x9F\x98\x80");
}

TEST_CASE("utf8: every position of a bad byte in long ASCII (the 8-byte fast path)") {
  for (std::size_t at = 0; at < 40; ++at) {
    std::string in(40, 'a');
    std::string expected = in;
    in[at] = '\xE9';
    expected.replace(at, 1, "\xC3\xA9");
    CHECK(repair_utf8(in) == expected);
    std::string nul(40, 'b');
    nul[at] = '\0';
    std::string nul_expected(40, 'b');
    nul_expected[at] = ' ';
    CHECK(repair_utf8(nul) == nul_expected);
    std::string multi(40, 'c');
    multi.insert(at, "\xE2\x82\xAC");  // a valid 3-byte character anywhere
    CHECK(repair_utf8(multi) == multi);
  }
}
