// policies/greylist_key.cc — see greylist_key.h.
#include "policies/greylist_key.h"

#include <arpa/inet.h>
#include <glib.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "lib/mime/decode.h"

namespace dotgate::policy {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }

// SHA-256 (GLib's, already a dependency for Unicode folding) of the pieces, each followed by a
// 0 byte so that ("ab", "c") and ("a", "bc") differ.
std::string sha256_hex(const std::vector<std::string_view>& pieces, std::size_t hex_chars) {
  GChecksum* sum = g_checksum_new(G_CHECKSUM_SHA256);
  static const guchar kSep = 0;
  for (auto p : pieces) {
    g_checksum_update(sum, reinterpret_cast<const guchar*>(p.data()), static_cast<gssize>(p.size()));
    g_checksum_update(sum, &kSep, 1);
  }
  std::string hex = g_checksum_get_string(sum);
  g_checksum_free(sum);
  return hex.substr(0, hex_chars);
}

void mask(unsigned char* bytes, int total_bits, int prefix) {
  for (int bit = prefix; bit < total_bits; ++bit) bytes[bit / 8] &= static_cast<unsigned char>(~(0x80 >> (bit % 8)));
}

}  // namespace

std::string greylist_client_ip(std::string_view a) {
  if (!a.empty() && a.front() == '[') {
    auto close = a.find(']');
    return std::string(a.substr(1, close == std::string_view::npos ? std::string_view::npos : close - 1));
  }
  // One colon: IPv4 with its port. More: a bare IPv6 literal. None: a bare IPv4 literal.
  auto colon = a.find(':');
  if (colon != std::string_view::npos && a.find(':', colon + 1) == std::string_view::npos) return std::string(a.substr(0, colon));
  return std::string(a);
}

std::string greylist_network(std::string_view client_address, int ipv4_prefix, int ipv6_prefix) {
  std::string text = greylist_client_ip(client_address);
  unsigned char b[16] = {};
  char out[INET6_ADDRSTRLEN] = {};
  if (inet_pton(AF_INET, text.c_str(), b) == 1) {
    mask(b, 32, ipv4_prefix);
    inet_ntop(AF_INET, b, out, sizeof out);
    return std::string(out) + "/" + std::to_string(ipv4_prefix);
  }
  if (inet_pton(AF_INET6, text.c_str(), b) == 1) {
    static const unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(b, kMapped, 12) == 0) {
      unsigned char v4[4];
      std::memcpy(v4, b + 12, 4);
      mask(v4, 32, ipv4_prefix);
      inet_ntop(AF_INET, v4, out, sizeof out);
      return std::string(out) + "/" + std::to_string(ipv4_prefix);
    }
    mask(b, 128, ipv6_prefix);
    inet_ntop(AF_INET6, b, out, sizeof out);
    return std::string(out) + "/" + std::to_string(ipv6_prefix);
  }
  return text;
}

std::string greylist_sender(std::string_view mail_from) {
  if (mail_from.empty()) return "<>";
  std::string s = lower(mail_from);
  auto at = s.rfind('@');
  std::string local = at == std::string::npos ? s : s.substr(0, at);
  std::string domain = at == std::string::npos ? std::string() : s.substr(at);
  // BATV (draft-levine-smtp-batv): prvs=TAG=local (and the older local=TAG form is rare).
  if (local.rfind("prvs=", 0) == 0 || local.rfind("btv1==", 0) == 0) {
    auto eq = local.find('=', local.rfind("prvs=", 0) == 0 ? 5 : 6);
    if (eq != std::string::npos && eq + 1 < local.size()) local = local.substr(eq + 1);
  }
  if (auto plus = local.find('+'); plus != std::string::npos && plus > 0) local.erase(plus);
  std::string out;
  for (std::size_t i = 0; i < local.size(); ++i) {
    if (std::isdigit(static_cast<unsigned char>(local[i]))) {
      if (out.empty() || out.back() != '#') out += '#';
    } else {
      out += local[i];
    }
  }
  return out + domain;
}

std::string greylist_recipient(std::string_view rcpt_to) { return lower(rcpt_to); }

std::string greylist_triplet_key(std::string_view network, std::string_view sender, std::string_view recipient) {
  return "t:" + sha256_hex({network, sender, recipient}, 32);
}

std::string greylist_message_digest(std::string_view message) {
  std::vector<mime::Segment> segments = mime::decode_message(message);
  std::vector<std::string> pieces;
  for (const auto& seg : segments) {
    std::string piece;
    if (seg.kind == mime::SegmentKind::Header) {
      std::string name = lower(seg.label);
      if (name != "from" && name != "to" && name != "cc" && name != "subject") continue;
      piece = "h:" + name + ":";
      bool space = false;
      for (char c : seg.text) {
        if (is_space(c)) {
          space = true;
          continue;
        }
        if (space && piece.back() != ':') piece += ' ';
        space = false;
        piece += c;
      }
    } else {
      piece = "b:" + lower(seg.label) + ":";
      for (char c : seg.text) {
        if (is_space(c)) continue;
        if (std::isdigit(static_cast<unsigned char>(c))) {
          if (piece.back() != '#') piece += '#';
          continue;
        }
        piece += c;
      }
    }
    pieces.push_back(std::move(piece));
  }
  std::vector<std::string_view> views(pieces.begin(), pieces.end());
  return sha256_hex(views, 64);
}

std::string greylist_message_key(std::string_view network, std::string_view sender, std::vector<std::string> recipients,
                                 std::string_view digest) {
  for (auto& r : recipients) r = lower(r);
  std::sort(recipients.begin(), recipients.end());
  recipients.erase(std::unique(recipients.begin(), recipients.end()), recipients.end());
  std::vector<std::string_view> pieces{network, sender};
  for (const auto& r : recipients) pieces.push_back(r);
  pieces.push_back(digest);
  return "m:" + sha256_hex(pieces, 32);
}

}  // namespace dotgate::policy
