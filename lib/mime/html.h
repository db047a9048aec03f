// lib/mime/html.h — the words a reader sees in an HTML part, for the keyword matcher.
//
// Pure, total (any input, never fails), linear in the input. Not an HTML parser: a tag skipper
// good enough to find words, hardened against the tricks spam uses to hide them.
//   - tags are removed; block-level tags (p, div, br, td, li, h1..h6, ...) become a space, as a
//     browser would break the text there, while inline tags (b, i, span, font, a, ...) become
//     nothing, so "vi<b></b>agra" reads "viagra" as it renders;
//   - attribute values are skipped with their quotes (a '>' inside a quoted value ends no tag);
//   - comments, <!DOCTYPE ...> and <?...?> are removed, and so are the bodies of script and
//     style (never shown); the text of other elements, title included, is kept;
//   - character references: numeric (&#233; &#xE9;) and the common named ones (&amp; &nbsp;
//     &eacute; ...) are decoded; unknown ones are kept as written;
//   - a '<' that starts no tag (followed by a space or a digit) is text; an unterminated tag or
//     comment at the end hides the rest (as a browser does).
// Input and output are UTF-8 (the decoder converts the part's charset before).
#pragma once

#include <string>
#include <string_view>

namespace dotgate::mime {

std::string html_to_text(std::string_view html);

}  // namespace dotgate::mime
