// test/fuzz/proxy_header_fuzz.cc — libFuzzer target for proxyproto::ProxyHeaderParser.
//
// Aborts when the outcome differs between the input fed whole, at one split point and byte by
// byte; when a result consumes more than its chunk; when a header is longer than kMaxHeader or
// than the bytes it was given; when a v1 header does not end in CRLF or a v2 one does not start
// with the signature; when an address it reports does not print; or when too_long is set on a
// result that is no error (and it is part of the outcome compared across splits).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "lib/proxyproto/proxy_header.h"

using dotgate::proxyproto::kMaxHeader;
using dotgate::proxyproto::ProxyHeaderParser;
using dotgate::proxyproto::Result;
using dotgate::proxyproto::Version;

namespace {

std::string run(std::string_view in, const std::vector<std::size_t>& cuts) {
  ProxyHeaderParser parser;
  std::size_t start = 0, fed = 0;
  std::vector<std::size_t> ends = cuts;
  ends.push_back(in.size());
  for (std::size_t end : ends) {
    std::string_view chunk = in.substr(start, end - start);
    start = end;
    Result r = parser.feed(chunk);
    if (r.consumed > chunk.size()) std::abort();
    if (r.kind != Result::Kind::Error && r.too_long) std::abort();  // the flag belongs to errors only
    if (r.kind == Result::Kind::Error) return std::string(r.too_long ? "L" : "E") + std::string(r.error);
    if (r.kind == Result::Kind::Done) {
      const auto& h = r.header;
      std::size_t total = fed + r.consumed;
      if (h.length != total || h.length > kMaxHeader) std::abort();
      std::string_view bytes = in.substr(0, total);
      if (h.version == Version::V1 && bytes.substr(bytes.size() - 2) != "\r\n") std::abort();
      if (h.version == Version::V2 && bytes.substr(0, 4) != "\r\n\r\n") std::abort();
      if (!h.use_connection_addresses() && (h.source.ip().empty() || h.destination.ip().empty())) std::abort();
      return "D" + std::to_string(total) + h.source.ip() + ":" + std::to_string(h.source.port) + ">" +
             h.destination.ip() + ":" + std::to_string(h.destination.port) + "/" + std::to_string(h.tlv_count) +
             (h.use_connection_addresses() ? "c" : "p");
    }
    if (r.consumed != chunk.size()) std::abort();
    fed += chunk.size();
  }
  return "M";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::size_t cut = in.empty() ? 0 : data[0] % (in.size() + 1);
  std::string whole = run(in, {});
  if (run(in, {cut}) != whole) std::abort();
  if (in.size() <= 256) {
    std::vector<std::size_t> bytewise;
    for (std::size_t i = 1; i < in.size(); ++i) bytewise.push_back(i);
    if (run(in, bytewise) != whole) std::abort();
  }
  return 0;
}
