// lib/match/fold.h — the one normal form that word-list phrases and message text are compared in.
//
// Pure and thread-safe (the only state is a table built once per process, under std::call_once,
// and immutable after). Both sides of a comparison go through the same function, one character at
// a time, so that "ÜBER" meets "über", "Straße" meets "STRASSE", "ｖｉａｇｒａ" (fullwidth)
// meets "viagra":
//   - ASCII letters are lowered (a table, the hot path: most mail is mostly ASCII);
//   - any other character is mapped to casefold(NFKC(c)) (GLib's full case folding after
//     compatibility normalisation), precomputed for the BMP;
//   - every run of whitespace (ASCII controls included, and Unicode spaces such as NBSP) becomes
//     one " ", so a phrase matches across any run of spaces, tabs and line breaks;
//   - invisible characters spammers put inside words to break them (soft hyphen, zero-width
//     space/joiners, word joiner, BOM, variation selectors, bidi controls) are dropped;
//   - bytes that are not valid UTF-8 become a " " (a separator: they can be part of no word).
// The folded text is valid UTF-8.
//
// Word boundaries (a hit must not touch a letter or digit on either side) are judged on folded
// text with is_word_char: letters, digits and combining marks, except in scripts written without
// spaces between words (Han, Hiragana, Katakana, Thai, Lao, Khmer, Myanmar), where a boundary
// rule would make a phrase impossible to find.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dotgate::match {

// Appends the folded form of `utf8` to `out`. A whitespace run that continues one already at the
// end of `out` is not repeated.
void fold_append(std::string_view utf8, std::string& out);
std::string fold(std::string_view utf8);

// Whether the code point counts as part of a word for the boundary rule.
bool is_word_char(std::uint32_t cp);
// In folded text: is the character that ends just before `pos` (starts at `pos`) a word
// character? False at the ends of the text.
bool word_char_before(std::string_view folded, std::size_t pos);
bool word_char_at(std::string_view folded, std::size_t pos);

}  // namespace dotgate::match
