// test/fuzz/received_header_fuzz.cc — libFuzzer target for the Received field dotgate writes
// (lib/smtp/received_header.h), the one place where the client's own words (its HELO argument)
// go into the message dotgate relays.
//
// Input: one flag byte (bit 0: EHLO, bit 1: TLS, bit 2: AUTH, bit 3: IPv6 address, bit 4: a long
// smtp.hostname), then the HELO argument, any bytes. Aborts when the field is not CRLF lines
// starting with "Received: " and then TABs, a line is empty, over 998 characters, starts with
// '.', or holds a byte outside printable US-ASCII and TAB; or when the field does not pass the
// DataStream (the reader of DATA, as the MTA's is) unchanged, ending exactly at the dot after it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "lib/smtp/data_stream.h"
#include "lib/smtp/received_header.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  std::uint8_t flags = data[0];
  dotgate::smtp::ReceivedFacts f;
  f.helo.assign(reinterpret_cast<const char*>(data + 1), size - 1);
  f.esmtp = flags & 1;
  if (flags & 2) {
    f.tls_version = "TLSv1.3";
    f.tls_cipher = "TLS_AES_256_GCM_SHA384";
    f.tls_cipher_iana = "TLS_AES_256_GCM_SHA384";
    f.tls_bits = f.tls_alg_bits = 256;
  }
  f.authenticated = flags & 4;
  f.client_ip = (flags & 8) ? "2001:db8::1" : "192.0.2.1";
  f.by = (flags & 16) ? std::string(253, 'h') : "mx.example.net";
  f.queue_id = "3F2A9C01B7";
  f.unix_time = 1796418887;
  std::string field = dotgate::smtp::received_header(f);

  if (field.rfind("Received: ", 0) != 0) std::abort();
  std::size_t at = 0;
  bool first = true;
  while (at < field.size()) {
    std::size_t crlf = field.find("\r\n", at);
    if (crlf == std::string::npos) std::abort();  // the last line has no CRLF
    std::size_t len = crlf - at;
    if (len == 0 || len > 998) std::abort();
    if (field[at] == '.') std::abort();
    if (!first && field[at] != '\t') std::abort();
    for (std::size_t i = at; i < crlf; ++i) {
      char c = field[i];
      if (!((c >= ' ' && c <= '~') || c == '\t')) std::abort();
    }
    first = false;
    at = crlf + 2;
  }

  dotgate::smtp::DataStream stream;
  std::string out;
  std::string input = field + ".\r\n";
  auto p = stream.feed(input, out);
  if (!p.ended || p.consumed != input.size() || out != field) std::abort();
  return 0;
}
