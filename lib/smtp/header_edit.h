// lib/smtp/header_edit.h — edits to a message's header section, on the wire form the spool keeps.
//
// Pure: bytes in, bytes out. Used when a passing verdict asks for headers (rspamd's X-Spam-*,
// a rewritten Subject) and the session replays the message with them. The header section is the
// lines up to the first empty line; a line that is neither a field ("Name:") nor a continuation
// (leading space or tab) ends it too (broken mail: what follows is left alone as body).
// Removal takes every field of that name, case-insensitive, with its continuation lines. New
// fields go to the top (where trace and filter fields go, RFC 5321 4.4), in the order given.
// A field name must be printable US-ASCII without ':' (RFC 5322 2.2) or the field is skipped; CR
// and LF in a value become spaces, so no value can end the header or smuggle a line.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dotgate::smtp {

using HeaderFields = std::vector<std::pair<std::string, std::string>>;

bool valid_field_name(std::string_view name);

// `wire`: dot-stuffed CRLF text without the final ".\r\n" (spool::Spool's content).
std::string edit_header(std::string_view wire, const HeaderFields& add, const std::vector<std::string>& remove);

}  // namespace dotgate::smtp
