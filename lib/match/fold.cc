// lib/match/fold.cc — see fold.h. The BMP table costs about 256 KiB and some tens of ms to build,
// once per process, the first time anything is folded (in practice: when the first word list is
// compiled at config load, not on a message).
#include "lib/match/fold.h"

#include <glib.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <mutex>
#include <vector>

namespace dotgate::match {

namespace {

// ASCII: upper case lowered; controls, DEL and space are all whitespace, ' '.
constexpr std::array<char, 128> make_ascii_table() {
  std::array<char, 128> t{};
  for (int b = 0; b < 128; ++b) {
    if (b <= 0x20 || b == 0x7f) t[b] = ' ';
    else if (b >= 'A' && b <= 'Z') t[b] = static_cast<char>(b - 'A' + 'a');
    else t[b] = static_cast<char>(b);
  }
  return t;
}
constexpr std::array<char, 128> kAscii = make_ascii_table();

constexpr std::array<bool, 128> make_ascii_word() {
  std::array<bool, 128> t{};
  for (int b = 0; b < 128; ++b)
    t[b] = (b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z');
  return t;
}
constexpr std::array<bool, 128> kAsciiWord = make_ascii_word();

// Characters with no visible form that are used to split a word so that a filter misses it.
bool ignorable(std::uint32_t cp) {
  return cp == 0x00AD || cp == 0x034F || cp == 0x061C || cp == 0x180E || (cp >= 0x200B && cp <= 0x200F) ||
         (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2060 && cp <= 0x2064) || (cp >= 0x2066 && cp <= 0x206F) ||
         cp == 0xFEFF || (cp >= 0xFE00 && cp <= 0xFE0F) || (cp >= 0xE0000 && cp <= 0xE0FFF) ||
         (cp >= 0x1D173 && cp <= 0x1D17A);
}

bool unicode_space(std::uint32_t cp) {
  return g_unichar_isspace(cp) || g_unichar_type(cp) == G_UNICODE_SPACE_SEPARATOR;
}

enum class Kind : std::uint8_t { Identity, Drop, Space, Text };

// casefold(NFKC(c)) for one character, or what it is when it is no text.
Kind fold_char(std::uint32_t cp, std::string& text) {
  if (ignorable(cp)) return Kind::Drop;
  if (unicode_space(cp)) return Kind::Space;
  char utf8[8];
  int n = g_unichar_to_utf8(cp, utf8);
  gchar* normal = g_utf8_normalize(utf8, n, G_NORMALIZE_NFKC);
  if (normal == nullptr) return Kind::Identity;
  gchar* folded = g_utf8_casefold(normal, -1);
  g_free(normal);
  text.assign(folded);
  g_free(folded);
  if (text == std::string_view(utf8, static_cast<std::size_t>(n))) return Kind::Identity;
  return Kind::Text;
}

// The BMP (U+0080..U+FFFF) precomputed: entry 0 identity, 1 drop, 2 space, else
// (offset << 2) | 3 into `pool`, where a length byte precedes the folded bytes.
struct FoldTable {
  std::vector<std::uint32_t> entry;
  std::string pool;

  FoldTable() : entry(0x10000, 0) {
    std::string text;
    for (std::uint32_t cp = 0x80; cp < 0x10000; ++cp) {
      if (cp >= 0xD800 && cp <= 0xDFFF) continue;  // surrogates: never decoded from valid UTF-8
      switch (fold_char(cp, text)) {
        case Kind::Identity:
          break;
        case Kind::Drop:
          entry[cp] = 1;
          break;
        case Kind::Space:
          entry[cp] = 2;
          break;
        case Kind::Text:
          // NFKC of a few characters is long (U+FDFA is 18 characters): 255 bytes is plenty.
          if (text.size() > 255) text.resize(255);
          entry[cp] = static_cast<std::uint32_t>(pool.size() << 2) | 3;
          pool.push_back(static_cast<char>(text.size()));
          pool += text;
          break;
      }
    }
  }
};

const FoldTable& table() {
  static std::once_flag once;
  static const FoldTable* t = nullptr;
  std::call_once(once, [] { t = new FoldTable(); });  // never freed: used until exit, by any thread
  return *t;
}

// Decodes one UTF-8 character at s[i] (s[i] >= 0x80). Returns its length, 0 when invalid
// (overlong, surrogate, out of range, truncated).
std::size_t decode(std::string_view s, std::size_t i, std::uint32_t& cp) {
  auto b0 = static_cast<unsigned char>(s[i]);
  std::size_t len;
  std::uint32_t min;
  if (b0 >= 0xC2 && b0 <= 0xDF) len = 2, cp = b0 & 0x1F, min = 0x80;
  else if (b0 >= 0xE0 && b0 <= 0xEF) len = 3, cp = b0 & 0x0F, min = 0x800;
  else if (b0 >= 0xF0 && b0 <= 0xF4) len = 4, cp = b0 & 0x07, min = 0x10000;
  else return 0;
  if (i + len > s.size()) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

// Writes into `out` at `w`, growing it; `out` is kept larger than needed while folding and cut
// to size at the end (writes through a pointer, not push_back, for the ASCII hot loop).
class Writer {
 public:
  Writer(std::string& out, std::size_t reserve) : out_(out), w_(out.size()) { out_.resize(w_ + reserve); }
  ~Writer() { out_.resize(w_); }
  void space() {
    if (w_ > 0 && out_[w_ - 1] == ' ') return;
    room(1);
    out_[w_++] = ' ';
  }
  void byte(char c) {
    room(1);
    out_[w_++] = c;
  }
  void bytes(std::string_view b) {
    room(b.size());
    std::memcpy(out_.data() + w_, b.data(), b.size());
    w_ += b.size();
  }
  // Folded text of one character: its ASCII bytes go through the ASCII rules (NFKC may give
  // spaces or upper case: "℃" is "°C").
  void folded(std::string_view f) {
    for (char c : f) {
      auto b = static_cast<unsigned char>(c);
      if (b >= 0x80) byte(c);
      else if (kAscii[b] == ' ') space();
      else byte(kAscii[b]);
    }
  }
  // The hot loop: a run of ASCII bytes from `s`, starting at `i`; returns where it stopped.
  // Eight bytes at a time when they are ASCII and hold no two whitespace bytes in a row (the
  // common case: words and single spaces): lowered and whitespace made ' ' with word
  // arithmetic, stored at once. Otherwise byte by byte, branch-free (a space is written every
  // time, the write position advances unless it follows a space: word lengths are random, a
  // branch on "is space" would mispredict).
  std::size_t ascii_run(std::string_view s, std::size_t i) {
    room(s.size() - i);  // ASCII never grows
    char* o = out_.data();
    std::size_t w = w_;
    bool after_space = w > 0 && o[w - 1] == ' ';
    const std::size_t n = s.size();
    constexpr std::uint64_t kOnes = 0x0101010101010101ull, kHigh = 0x8080808080808080ull;
    while (i < n) {
      if (i + 8 <= n) {
        std::uint64_t v;
        std::memcpy(&v, s.data() + i, 8);
        if ((v & kHigh) == 0) {
          // Per byte b < 0x80, so b + k never carries into the next byte for k <= 0x80.
          std::uint64_t ge_a = (v + (0x80 - 'A') * kOnes) & kHigh;       // b >= 'A'
          std::uint64_t gt_z = (v + (0x80 - 'Z' - 1) * kOnes) & kHigh;   // b > 'Z'
          std::uint64_t upper = ge_a & ~gt_z;
          std::uint64_t not_ws = (v + (0x80 - 0x21) * kOnes) & kHigh;   // b > ' '
          std::uint64_t del = (v + kOnes) & kHigh;                       // b == 0x7f
          std::uint64_t ws = (~not_ws & kHigh) | del;
          std::uint64_t pairs = ws & ((ws << 8) | (after_space ? 0x80u : 0u));
          if (pairs == 0) {
            std::uint64_t ws_bytes = (ws >> 7) * 0xFF;
            v = (v | (upper >> 2)) & ~ws_bytes;
            v |= ws_bytes & (' ' * kOnes);
            std::memcpy(o + w, &v, 8);
            w += 8;
            i += 8;
            after_space = (ws >> 63) != 0;
            continue;
          }
        }
      }
      const std::size_t stop = std::min(n, i + 8);  // then back to the fast path
      for (; i < stop; ++i) {
        auto b = static_cast<unsigned char>(s[i]);
        if (b >= 0x80) {
          w_ = w;
          return i;
        }
        char f = kAscii[b];
        bool space = f == ' ';
        o[w] = f;
        w += !(space && after_space);
        after_space = space;
      }
    }
    w_ = w;
    return i;
  }

 private:
  void room(std::size_t n) {
    if (w_ + n > out_.size()) out_.resize((w_ + n) * 2);
  }
  std::string& out_;
  std::size_t w_;
};

// The character that ends at `pos` in valid UTF-8 text (pos > 0).
std::uint32_t char_before(std::string_view s, std::size_t pos) {
  std::size_t start = pos - 1;
  for (int k = 0; k < 3 && start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80; ++k) --start;
  std::uint32_t cp = 0;
  if (decode(s, start, cp) == 0) return ' ';
  return cp;
}

}  // namespace

void fold_append(std::string_view s, std::string& out) {
  const FoldTable& t = table();
  Writer w(out, s.size() + 16);
  std::size_t i = 0;
  std::string scratch;
  while (i < s.size()) {
    i = w.ascii_run(s, i);
    if (i >= s.size()) break;
    std::uint32_t cp = 0;
    std::size_t len = decode(s, i, cp);
    if (len == 0) {
      w.space();  // not UTF-8: a separator (the decoder repairs what it can before us)
      ++i;
      continue;
    }
    if (cp < 0x10000) {
      std::uint32_t e = t.entry[cp];
      if (e == 0) w.bytes(s.substr(i, len));
      else if (e == 2) w.space();
      else if (e != 1) {
        std::size_t off = e >> 2;
        auto flen = static_cast<unsigned char>(t.pool[off]);
        w.folded(std::string_view(t.pool).substr(off + 1, flen));
      }
    } else {
      switch (fold_char(cp, scratch)) {  // outside the BMP: rare enough to fold on the fly
        case Kind::Identity:
          w.bytes(s.substr(i, len));
          break;
        case Kind::Space:
          w.space();
          break;
        case Kind::Drop:
          break;
        case Kind::Text:
          w.folded(scratch);
          break;
      }
    }
    i += len;
  }
}

std::string fold(std::string_view utf8) {
  std::string out;
  fold_append(utf8, out);
  return out;
}

bool is_word_char(std::uint32_t cp) {
  if (cp < 0x80) return kAsciiWord[cp];
  if (!(g_unichar_isalnum(cp) || g_unichar_ismark(cp))) return false;
  switch (g_unichar_get_script(cp)) {
    case G_UNICODE_SCRIPT_HAN:
    case G_UNICODE_SCRIPT_HIRAGANA:
    case G_UNICODE_SCRIPT_KATAKANA:
    case G_UNICODE_SCRIPT_THAI:
    case G_UNICODE_SCRIPT_LAO:
    case G_UNICODE_SCRIPT_KHMER:
    case G_UNICODE_SCRIPT_MYANMAR:
      return false;
    default:
      return true;
  }
}

bool word_char_before(std::string_view folded, std::size_t pos) {
  if (pos == 0 || pos > folded.size()) return false;
  auto b = static_cast<unsigned char>(folded[pos - 1]);
  if (b < 0x80) return kAsciiWord[b];
  return is_word_char(char_before(folded, pos));
}

bool word_char_at(std::string_view folded, std::size_t pos) {
  if (pos >= folded.size()) return false;
  auto b = static_cast<unsigned char>(folded[pos]);
  if (b < 0x80) return kAsciiWord[b];
  std::uint32_t cp = 0;
  if (decode(folded, pos, cp) == 0) return false;
  return is_word_char(cp);
}

}  // namespace dotgate::match
