// Unit tests for lib/smtp/header_edit: fields added at the top, removed with their continuation
// lines, on the dot-stuffed wire form; the body is never touched; hostile values stay one line.
#include <doctest/doctest.h>

#include "lib/smtp/header_edit.h"

using dotgate::smtp::edit_header;
using dotgate::smtp::HeaderFields;

TEST_CASE("added fields go to the top in order; the rest is unchanged") {
  std::string wire = "From: a@b\r\nSubject: hi\r\n\r\nbody\r\n";
  HeaderFields add = {{"X-Spam", "Yes"}, {"X-Spam-Score", "7.5"}};
  CHECK(edit_header(wire, add, {}) == "X-Spam: Yes\r\nX-Spam-Score: 7.5\r\nFrom: a@b\r\nSubject: hi\r\n\r\nbody\r\n");
}

TEST_CASE("removal takes every field of the name, case-insensitive, with continuation lines") {
  std::string wire =
      "Subject: one\r\n\tfolded\r\nFrom: a@b\r\nSUBJECT : two\r\nX-Keep: 1\r\n  also kept\r\n\r\nSubject: in the body\r\n";
  CHECK(edit_header(wire, {{"Subject", "[SPAM] one"}}, {"subject"}) ==
        "Subject: [SPAM] one\r\nFrom: a@b\r\nX-Keep: 1\r\n  also kept\r\n\r\nSubject: in the body\r\n");
}

TEST_CASE("the body, dot-stuffed lines included, is copied byte for byte") {
  std::string wire = "A: 1\r\n\r\n..leading dot\r\n.\r\nX: not a header\r\n";
  CHECK(edit_header(wire, {}, {"X"}) == wire);
}

TEST_CASE("a message without a header section or without a body") {
  CHECK(edit_header("\r\nbody only\r\n", {{"X-A", "1"}}, {}) == "X-A: 1\r\n\r\nbody only\r\n");
  CHECK(edit_header("A: 1\r\nB: 2\r\n", {}, {"a"}) == "B: 2\r\n");
  CHECK(edit_header("", {{"X-A", "1"}}, {}) == "X-A: 1\r\n");
}

TEST_CASE("a line that is not a field ends the header section (broken mail is left alone)") {
  std::string wire = "A: 1\r\nnot a header line\r\nA: 2\r\n";
  CHECK(edit_header(wire, {}, {"A"}) == "not a header line\r\nA: 2\r\n");
}

TEST_CASE("CR and LF in a value cannot add lines; invalid names are skipped") {
  std::string out = edit_header("A: 1\r\n\r\nb\r\n", {{"X-Evil", "x\r\n.\r\nMAIL FROM:<y>"}, {"Bad Name", "v"}, {"", "v"}}, {});
  CHECK(out == "X-Evil: x  .  MAIL FROM:<y>\r\nA: 1\r\n\r\nb\r\n");
}

TEST_CASE("a field name starting with a dot is dot-stuffed on the wire") {
  CHECK(edit_header("\r\n", {{".odd", "v"}}, {}) == "..odd: v\r\n\r\n");
  // and a stuffed field is recognised for removal
  CHECK(edit_header("..odd: v\r\nA: 1\r\n\r\n", {}, {".odd"}) == "A: 1\r\n\r\n");
}
