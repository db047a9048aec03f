// lib/http/header_value.h — client text made safe to send as an HTTP request header's value.
//
// The verdict and lookup services receive envelope addresses in headers (rspamd's From/Rcpt,
// the lookup service's X-Dotgate-Recipient). Those addresses are client text: a CR or LF in them
// would let a client inject headers, so every control character becomes '?'.
#pragma once

#include <string>
#include <string_view>

namespace dotgate::http {

// `text` with control characters (below 0x20, and DEL) replaced by '?'.
std::string header_value(std::string_view text);
// An SMTP path as a header value: "<" + header_value(address) + ">".
std::string path_header_value(std::string_view address);

}  // namespace dotgate::http
