// test/unit/http/header_value_test.cc — client text as HTTP header values: nothing injected.
#include <doctest/doctest.h>

#include <string>

#include "lib/http/header_value.h"

using dotgate::http::header_value;
using dotgate::http::path_header_value;

TEST_CASE("header value: no control character survives (no header injection)") {
  CHECK(header_value("a@b") == "a@b");
  CHECK(header_value("a\r\nX-Evil: 1@b") == "a??X-Evil: 1@b");
  CHECK(header_value(std::string("a\0b\x7f", 4)) == "a?b?");
  CHECK(header_value("tab\there") == "tab?here");
  CHECK(header_value("caf\xc3\xa9") == "caf\xc3\xa9");  // 8-bit text is not a control character
}

TEST_CASE("path header value: angle brackets around the cleaned address") {
  CHECK(path_header_value("a@b") == "<a@b>");
  CHECK(path_header_value("") == "<>");  // the null sender
  CHECK(path_header_value("a\r\nX-Evil: 1@b") == "<a??X-Evil: 1@b>");
}
