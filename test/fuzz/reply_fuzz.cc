// test/fuzz/reply_fuzz.cc — libFuzzer target for ReplyParser, Reply, EHLO and reply rewriting:
// all the code that reads what the downstream MTA says.
//
// Aborts when a different chunking gives different replies, when a parsed reply does not survive
// serialize() and parse again, or when a rewritten reply is not valid RFC 5321 (invariant 4).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "lib/smtp/ehlo.h"
#include "lib/smtp/reply.h"
#include "lib/smtp/reply_rewrite.h"

using dotgate::smtp::Reply;
using dotgate::smtp::ReplyContext;
using dotgate::smtp::ReplyParser;

namespace {

std::vector<std::string> parse(std::string_view in, std::size_t cut, bool& failed) {
  ReplyParser parser;
  std::vector<Reply> out;
  bool ok = parser.feed(in.substr(0, cut), out);
  bool ok2 = parser.feed(in.substr(cut), out);
  if (!ok && ok2) std::abort();  // errors stick
  failed = !ok2;
  if (failed != parser.failed()) std::abort();
  std::vector<std::string> wire;
  for (const auto& r : out) wire.push_back(r.serialize());
  return wire;
}

// A serialised reply must read back as exactly one reply with the same wire form.
void check_wire(const std::string& wire) {
  ReplyParser again;
  std::vector<Reply> back;
  if (!again.feed(wire, back) || back.size() != 1 || !again.idle()) std::abort();
  if (back[0].serialize() != wire) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::size_t cut = in.empty() ? 0 : data[0] % (in.size() + 1);
  bool failed_whole = false, failed_split = false;
  auto whole = parse(in, in.size(), failed_whole);
  if (whole != parse(in, cut, failed_split) || failed_whole != failed_split) std::abort();

  ReplyParser parser;
  std::vector<Reply> replies;
  parser.feed(in, replies);
  for (const Reply& reply : replies) {
    if (!dotgate::smtp::valid_reply_code(reply.code) || reply.lines.empty()) std::abort();
    if (reply.lines.size() > ReplyParser::kMaxReplyLines) std::abort();
    check_wire(reply.serialize());
    for (auto context : {ReplyContext::Greeting, ReplyContext::Ehlo, ReplyContext::Helo,
                         ReplyContext::Data, ReplyContext::DataEnd, ReplyContext::Other}) {
      if (!dotgate::smtp::reply_allowed(context, reply)) continue;
      Reply out = dotgate::smtp::rewrite_reply(context, reply);
      check_wire(out.serialize());
      if (context == ReplyContext::Greeting && out.code != 220 && out.code != 421 && out.code != 554) {
        std::abort();
      }
      bool needs_code = context != ReplyContext::Greeting && context != ReplyContext::Ehlo &&
                        context != ReplyContext::Helo && out.klass() != 3;
      if (needs_code) {
        for (const auto& line : out.lines) {
          if (!dotgate::smtp::has_enhanced_code(out.code, line)) std::abort();
        }
      }
    }
    if (reply.code == 250) {
      dotgate::smtp::EhloOffer offer;
      offer.max_message_size = data[0] * 1000u;
      offer.auth_passthrough = data[0] & 1;
      offer.prdr = data[0] & 2;
      Reply ehlo = dotgate::smtp::rewrite_ehlo(reply, offer);
      check_wire(ehlo.serialize());
      auto caps = dotgate::smtp::parse_ehlo(ehlo);
      if (!caps.pipelining || !caps.enhancedstatuscodes || caps.starttls || caps.chunking ||
          caps.xclient || caps.xforward || caps.prdr != offer.prdr) {
        std::abort();
      }
    }
  }
  return 0;
}
