// lib/mime/decode.h — the readable text of a message: raw RFC 5322 bytes in, UTF-8 texts out.
//
// Pure (no I/O, no loop) and safe to call concurrently from several threads on separate
// messages: GMime is initialised once per process (std::call_once) and each call parses its own
// copy. What comes out, in message order:
//   - every header field of the message (and of each message/rfc822 inside it), its value
//     unfolded and RFC 2047-decoded (adjacent encoded words joined, any charset GMime or iconv
//     knows), as kind Header labelled with the field name. Not the Content-* fields: GMime
//     gives them to the body part, and they are structure (types, boundaries, file names), not
//     text a reader is shown;
//   - every text/* leaf part, walking nested multiparts and message/rfc822 parts, decoded from its
//     Content-Transfer-Encoding (base64, quoted-printable, ...) and converted from its charset to
//     UTF-8, as kind Text labelled with its content type; text/html is reduced to its visible
//     words (html.h).
// Broken MIME never fails: GMime parses what it can (a missing closing boundary ends the part at
// the end of the message, bad base64 characters are skipped, a truncated message yields its
// beginning); a charset iconv does not know, or text that is not what its charset claims, is
// repaired (utf8.h): valid UTF-8 kept, other bytes read as Windows-1252. Every text is valid
// UTF-8. Nesting deeper than `max_depth` and parts past `max_parts` are not looked into (a
// message built to exhaust us costs bounded work).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace dotgate::mime {

enum class SegmentKind { Header, Text };

struct Segment {
  SegmentKind kind;
  std::string label;  // the header field name ("Subject"), or the part's type ("text/html")
  std::string text;   // UTF-8
};

struct DecodeLimits {
  std::size_t max_depth = 32;    // multipart / message nesting
  std::size_t max_parts = 1000;  // leaf parts looked at
};

std::vector<Segment> decode_message(std::string_view message, const DecodeLimits& limits = {});

}  // namespace dotgate::mime
