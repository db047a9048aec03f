// lib/mime/utf8.cc — see utf8.h.
#include "lib/mime/utf8.h"

#include <glib.h>

#include <cstring>

namespace dotgate::mime {

namespace {

// Windows-1252 0x80..0x9F; the five unassigned bytes stay the C1 control of the same value
// (a separator for the matcher, as ISO-8859-1 would read them).
constexpr std::uint16_t kCp1252High[32] = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178};

}  // namespace

void append_utf8(std::uint32_t cp, std::string& out) {
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
  char buf[6];
  int n = g_unichar_to_utf8(cp, buf);
  out.append(buf, static_cast<std::size_t>(n));
}

// ASCII, most of any mail, is skipped eight bytes at a time.
std::size_t valid_utf8_prefix(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    while (i + 8 <= n) {
      std::uint64_t v;
      std::memcpy(&v, p + i, 8);
      // No byte with the high bit set, and no zero byte (the classic has-zero-byte test).
      if ((v & 0x8080808080808080ull) != 0 || ((v - 0x0101010101010101ull) & ~v & 0x8080808080808080ull) != 0) break;
      i += 8;
    }
    if (i >= n) break;
    unsigned char b = p[i];
    if (b == 0) return i;
    if (b < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    std::uint32_t cp, min;
    if (b >= 0xC2 && b <= 0xDF) len = 2, cp = b & 0x1F, min = 0x80;
    else if (b >= 0xE0 && b <= 0xEF) len = 3, cp = b & 0x0F, min = 0x800;
    else if (b >= 0xF0 && b <= 0xF4) len = 4, cp = b & 0x07, min = 0x10000;
    else return i;
    if (i + len > n) return i;
    for (std::size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return n;
}

std::string repair_utf8(std::string_view bytes) {
  std::size_t good = valid_utf8_prefix(bytes);
  if (good == bytes.size()) return std::string(bytes);
  std::string out;
  out.reserve(bytes.size() + bytes.size() / 4);
  std::size_t i = 0;
  for (;;) {
    out.append(bytes.data() + i, good);  // the valid run from i, in one piece
    i += good;
    if (i >= bytes.size()) break;
    auto b = static_cast<unsigned char>(bytes[i]);
    if (b == 0) out.push_back(' ');  // NUL: a separator
    else append_utf8(b >= 0x80 && b < 0xA0 ? kCp1252High[b - 0x80] : b, out);
    ++i;
    good = valid_utf8_prefix(bytes.substr(i));
  }
  return out;
}

}  // namespace dotgate::mime
