// lib/mime/utf8.h — text of unknown or lying charset made valid UTF-8, keeping what can be read.
//
// Pure. Mail often carries 8-bit text with no charset, a wrong one, or one iconv does not know.
// Valid UTF-8 is kept as it is; every byte that is not part of a valid UTF-8 sequence is read as
// Windows-1252 (a superset of ISO-8859-1 for printable characters, and what mislabelled Western
// mail nearly always is), so ASCII words are never lost and most Western text stays readable.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace dotgate::mime {

std::string repair_utf8(std::string_view bytes);
// The length of the longest prefix that is valid UTF-8 without NUL (bytes.size(): all of it).
std::size_t valid_utf8_prefix(std::string_view bytes);
// Appends the UTF-8 encoding of `cp` (U+FFFD for a surrogate or a value past U+10FFFF).
void append_utf8(std::uint32_t cp, std::string& out);

}  // namespace dotgate::mime
