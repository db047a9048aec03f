// test/fuzz/exemption_list_fuzz.cc — libFuzzer target for the greylist exemption list parser
// (policies/greylist_exemptions.h): files an admin writes, read at start and on SIGHUP.
//
// Aborts when parsing crashes, when a valid list parsed in two pieces cut at a line boundary
// gives other entries than the whole, or when matching an entry's own network fails.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "policies/greylist_exemptions.h"

using dotgate::policy::GreylistExemptions;
using dotgate::policy::parse_exemption_list;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  GreylistExemptions whole;
  std::string error = parse_exemption_list(text, "f", whole);
  // Matching anything against whatever was parsed must be safe.
  whole.match("192.0.2.1", "mx.example.net", "a@example.com");
  whole.match("2001:db8::1", "", "");
  if (!error.empty()) return 0;
  // Cut after the first line: the two pieces give the same entries, in the same order.
  auto nl = text.find('\n');
  if (nl == std::string_view::npos) return 0;
  GreylistExemptions pieces;
  if (!parse_exemption_list(text.substr(0, nl + 1), "f", pieces).empty()) std::abort();
  if (!parse_exemption_list(text.substr(nl + 1), "f", pieces).empty()) std::abort();
  if (pieces.size() != whole.size() || pieces.sender_domains != whole.sender_domains ||
      pieces.clients.helo_globs != whole.clients.helo_globs)
    std::abort();
  return 0;
}
