// lib/mime/html.cc — see html.h. One pass, one output string; every search for an end ('>',
// "-->", "</script") starts where the last one stopped, so the work stays linear.
#include "lib/mime/html.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "lib/mime/utf8.h"

namespace dotgate::mime {

namespace {

bool alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool digit(char c) { return c >= '0' && c <= '9'; }
char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// Elements a browser lays out as blocks or line breaks: the text on either side is not one word.
// string_views, not C strings: compared on every tag, a strlen per candidate would dominate.
constexpr std::string_view kBlockTags[] = {
    "address", "article", "aside", "blockquote", "body", "br", "button", "caption", "center", "dd",
    "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4",
    "h5", "h6", "head", "header", "hr", "html", "iframe", "img", "input", "li", "main", "nav", "ol",
    "option", "p", "pre", "section", "select", "table", "tbody", "td", "textarea", "tfoot", "th",
    "thead", "title", "tr", "ul"};

bool block_tag(std::string_view name) {
  if (name.empty() || name.size() > 10) return false;
  // By hand: names are a few bytes, a memcmp call per candidate costs more than the compare.
  for (std::string_view t : kBlockTags) {
    if (t.size() != name.size()) continue;
    std::size_t k = 0;
    while (k < t.size() && t[k] == name[k]) ++k;
    if (k == t.size()) return true;
  }
  return false;
}

struct NamedEntity {
  std::string_view name;
  std::uint32_t cp;
};
// The named references mail actually uses; Latin-1 letters come from kLatin1Names below.
constexpr NamedEntity kEntities[] = {
    {"amp", '&'},       {"lt", '<'},        {"gt", '>'},        {"quot", '"'},      {"apos", '\''},
    {"nbsp", 0xA0},     {"shy", 0xAD},      {"copy", 0xA9},     {"reg", 0xAE},      {"trade", 0x2122},
    {"euro", 0x20AC},   {"pound", 0xA3},    {"yen", 0xA5},      {"cent", 0xA2},     {"sect", 0xA7},
    {"deg", 0xB0},      {"plusmn", 0xB1},   {"middot", 0xB7},   {"para", 0xB6},     {"laquo", 0xAB},
    {"raquo", 0xBB},    {"hellip", 0x2026}, {"mdash", 0x2014},  {"ndash", 0x2013},  {"lsquo", 0x2018},
    {"rsquo", 0x2019},  {"sbquo", 0x201A},  {"ldquo", 0x201C},  {"rdquo", 0x201D},  {"bdquo", 0x201E},
    {"bull", 0x2022},   {"zwj", 0x200D},    {"zwnj", 0x200C},   {"ensp", 0x2002},   {"emsp", 0x2003},
    {"thinsp", 0x2009}, {"iexcl", 0xA1},    {"iquest", 0xBF},   {"ordf", 0xAA},     {"ordm", 0xBA},
    {"sup1", 0xB9},     {"sup2", 0xB2},     {"sup3", 0xB3},     {"frac12", 0xBD},   {"frac14", 0xBC},
    {"frac34", 0xBE},   {"micro", 0xB5},    {"OElig", 0x152},   {"oelig", 0x153},   {"Scaron", 0x160},
    {"scaron", 0x161},  {"Yuml", 0x178},    {"Zcaron", 0x17D},  {"zcaron", 0x17E},
};
// &Agrave; .. &yuml; are U+00C0 .. U+00FF in order.
constexpr std::string_view kLatin1Names[64] = {
    "Agrave", "Aacute", "Acirc",  "Atilde", "Auml",   "Aring",  "AElig",  "Ccedil", "Egrave", "Eacute", "Ecirc",
    "Euml",   "Igrave", "Iacute", "Icirc",  "Iuml",   "ETH",    "Ntilde", "Ograve", "Oacute", "Ocirc",  "Otilde",
    "Ouml",   "times",  "Oslash", "Ugrave", "Uacute", "Ucirc",  "Uuml",   "Yacute", "THORN",  "szlig",  "agrave",
    "aacute", "acirc",  "atilde", "auml",   "aring",  "aelig",  "ccedil", "egrave", "eacute", "ecirc",  "euml",
    "igrave", "iacute", "icirc",  "iuml",   "eth",    "ntilde", "ograve", "oacute", "ocirc",  "otilde", "ouml",
    "divide", "oslash", "ugrave", "uacute", "ucirc",  "uuml",   "yacute", "thorn",  "yuml"};

bool named_entity(std::string_view name, std::uint32_t& cp) {
  for (const auto& e : kEntities)
    if (name == e.name) return cp = e.cp, true;
  for (std::uint32_t k = 0; k < 64; ++k)
    if (name == kLatin1Names[k]) return cp = 0xC0 + k, true;
  return false;
}

// A character reference at html[i] == '&'. Appends its character and returns the length used,
// or 0 when it is none (the '&' is then text).
std::size_t entity(std::string_view html, std::size_t i, std::string& out) {
  std::size_t j = i + 1;
  if (j < html.size() && html[j] == '#') {
    ++j;
    bool hex = j < html.size() && (html[j] == 'x' || html[j] == 'X');
    if (hex) ++j;
    std::uint32_t cp = 0;
    std::size_t digits = 0;
    for (; j < html.size(); ++j, ++digits) {
      char c = html[j];
      int v = digit(c) ? c - '0' : hex && c >= 'a' && c <= 'f' ? c - 'a' + 10 : hex && c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (v < 0) break;
      if (cp <= 0x10FFFF) cp = cp * (hex ? 16 : 10) + static_cast<std::uint32_t>(v);  // stop growing: no overflow
    }
    if (digits == 0) return 0;
    if (j < html.size() && html[j] == ';') ++j;
    append_utf8(cp == 0 ? 0xFFFD : cp, out);
    return j - i;
  }
  std::size_t start = j;
  while (j < html.size() && j - start < 10 && (alpha(html[j]) || digit(html[j]))) ++j;
  if (j == start || j >= html.size() || html[j] != ';') return 0;
  std::uint32_t cp = 0;
  if (!named_entity(html.substr(start, j - start), cp)) return 0;
  append_utf8(cp, out);
  return j + 1 - i;
}

// Where the tag opened at html[i] == '<' ends (the index of its '>'), or npos. A quote opens a
// quoted value only after '=' (as in the HTML tokenizer): a stray quote in a tag must not let a
// sender hide the text after it from us while a browser shows it.
std::size_t tag_end(std::string_view html, std::size_t i) {
  char quote = 0;
  char last = 0;  // last non-space character outside quotes
  for (std::size_t k = i + 1; k < html.size(); ++k) {
    char c = html[k];
    if (quote) {
      if (c == quote) quote = 0, last = c;
      continue;
    }
    if ((c == '"' || c == '\'') && last == '=') {
      quote = c;
      continue;
    }
    if (c == '>') return k;
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') last = c;
  }
  return std::string_view::npos;
}

// The first "</name" at or after `from`, case-insensitive; npos if none.
std::size_t find_close(std::string_view html, std::size_t from, std::string_view name) {
  for (std::size_t k = html.find("</", from); k != std::string_view::npos; k = html.find("</", k + 2)) {
    if (k + 2 + name.size() > html.size()) return std::string_view::npos;
    bool same = true;
    for (std::size_t m = 0; m < name.size() && same; ++m) same = lower(html[k + 2 + m]) == name[m];
    if (same) return k;
  }
  return std::string_view::npos;
}

// The first `c` at or after `from`, or html.size().
std::size_t find_byte(std::string_view html, std::size_t from, char c) {
  if (from >= html.size()) return html.size();
  const void* p = std::memchr(html.data() + from, c, html.size() - from);
  return p ? static_cast<std::size_t>(static_cast<const char*>(p) - html.data()) : html.size();
}

}  // namespace

std::string html_to_text(std::string_view html) {
  std::string out;
  out.reserve(html.size() / 2);
  std::size_t i = 0;
  const std::size_t n = html.size();
  std::size_t next_lt = 0, next_amp = 0;  // next '<' and '&' at or after i once searched (n: none)
  if (n > 0) next_lt = find_byte(html, 0, '<'), next_amp = find_byte(html, 0, '&');
  while (i < n) {
    char c = html[i];
    if (c == '&') {
      std::size_t used = entity(html, i, out);
      if (used == 0) out.push_back('&'), used = 1;
      i += used;
      continue;
    }
    if (c != '<') {
      // Plain text up to the next markup, in one piece. Two memchr searches whose results are
      // kept until passed (not find_first_of("<&"): libstdc++ runs a memchr over the set for
      // every byte, several times slower on long text).
      if (next_lt < i) next_lt = find_byte(html, i, '<');
      if (next_amp < i) next_amp = find_byte(html, i, '&');
      std::size_t next = std::min(next_lt, next_amp);
      out.append(html.data() + i, next - i);
      i = next;
      continue;
    }
    if (i + 3 < n && html[i + 1] == '!' && html[i + 2] == '-' && html[i + 3] == '-') {
      std::size_t end = html.find("-->", i + 4);
      if (end == std::string_view::npos) break;
      i = end + 3;
      continue;
    }
    char next = i + 1 < n ? html[i + 1] : 0;
    bool closing = next == '/';
    bool opens_tag = alpha(next) || next == '!' || next == '?' || (closing && i + 2 < n && alpha(html[i + 2]));
    if (!opens_tag) {
      out.push_back('<');
      ++i;
      continue;
    }
    std::size_t end = tag_end(html, i);
    if (end == std::string_view::npos) break;  // an unterminated tag hides the rest
    std::string name;
    for (std::size_t k = i + (closing ? 2 : 1); k < end && name.size() < 16 && (alpha(html[k]) || digit(html[k])); ++k)
      name.push_back(lower(html[k]));
    bool self_closing = end > i && html[end - 1] == '/';
    i = end + 1;
    if (next == '!' || next == '?') continue;
    if (!closing && !self_closing && (name == "script" || name == "style")) {
      std::size_t close = find_close(html, i, name);
      i = close == std::string_view::npos ? n : close;  // the closing tag is then skipped as a tag
      continue;
    }
    if (block_tag(name)) out.push_back(' ');
  }
  return out;
}

}  // namespace dotgate::mime
