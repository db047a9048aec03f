// Unit tests for lib/mime/decode: raw messages in, the UTF-8 texts a reader would see out.
// Messages are written with "\n" and sent with CRLF, as they arrive over SMTP.
#include <doctest/doctest.h>

#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <glib.h>

#include "lib/mime/decode.h"

using namespace dotgate::mime;

namespace {

std::string crlf(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\n') out += "\r\n";
    else out.push_back(c);
  }
  return out;
}

std::vector<Segment> decode(std::string_view lf_message) { return decode_message(crlf(lf_message)); }

std::string header(const std::vector<Segment>& segments, std::string_view name) {
  for (const auto& s : segments)
    if (s.kind == SegmentKind::Header && s.label == name) return s.text;
  return "<none>";
}

std::vector<std::string> texts(const std::vector<Segment>& segments) {
  std::vector<std::string> out;
  for (const auto& s : segments)
    if (s.kind == SegmentKind::Text) out.push_back(s.text);
  return out;
}

std::vector<std::string> labels(const std::vector<Segment>& segments) {
  std::vector<std::string> out;
  for (const auto& s : segments)
    if (s.kind == SegmentKind::Text) out.push_back(s.label);
  return out;
}

bool contains(const std::string& hay, std::string_view needle) { return hay.find(needle) != std::string::npos; }

}  // namespace

TEST_CASE("decode: a plain message gives its headers and its body") {
  auto s = decode("From: Alice <a@example.org>\nTo: b@example.net\nSubject: hello there\n\nJust text.\n");
  CHECK(header(s, "Subject") == "hello there");
  CHECK(header(s, "From") == "Alice <a@example.org>");
  REQUIRE(texts(s).size() == 1);
  CHECK(texts(s)[0] == "Just text.\r\n");
  CHECK(labels(s)[0] == "text/plain");
}

TEST_CASE("decode: Content-* fields are structure, not text: not among the headers") {
  auto s = decode("Subject: s\nMIME-Version: 1.0\nContent-Type: text/plain\nContent-Description: desc\nX-Other: o\n\nb\n");
  CHECK(header(s, "Content-Type") == "<none>");
  CHECK(header(s, "Content-Description") == "<none>");
  CHECK(header(s, "X-Other") == "o");
}

TEST_CASE("decode: header values are unfolded") {
  auto s = decode("Subject: a long\n subject line\n\tcontinued\n\nbody\n");
  CHECK(contains(header(s, "Subject"), "a long subject line"));
  CHECK(contains(header(s, "Subject"), "continued"));
}

TEST_CASE("decode: RFC 2047 encoded words, B and Q, in several charsets") {
  SUBCASE("B, UTF-8") {
    auto s = decode("Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?=\n\nx\n");
    CHECK(header(s, "Subject") == "Gr\xC3\xBC\xC3\x9F" "e aus K\xC3\xB6ln");
  }
  SUBCASE("Q, ISO-8859-1, underscores are spaces") {
    auto s = decode("Subject: =?ISO-8859-1?Q?Caf=E9_cr=E8me?=\n\nx\n");
    CHECK(header(s, "Subject") == "Caf\xC3\xA9 cr\xC3\xA8me");
  }
  SUBCASE("adjacent encoded words are joined without the space between them") {
    auto s = decode("Subject: =?UTF-8?Q?vi?= =?UTF-8?Q?agra?= now\n\nx\n");
    CHECK(header(s, "Subject") == "viagra now");
  }
  SUBCASE("a character split across two encoded words") {
    // "ü" is C3 BC: one byte in each word.
    auto s = decode("Subject: =?UTF-8?Q?=C3?= =?UTF-8?Q?=BCber?=\n\nx\n");
    CHECK(header(s, "Subject") == "\xC3\xBC" "ber");
  }
  SUBCASE("windows-1252") {
    auto s = decode("Subject: =?windows-1252?Q?=93casino=94_=80100?=\n\nx\n");
    CHECK(header(s, "Subject") == "\xE2\x80\x9C" "casino\xE2\x80\x9D \xE2\x82\xAC" "100");
  }
  SUBCASE("KOI8-R") {
    auto s = decode("Subject: =?KOI8-R?B?8NLJ18XUIM3J0g==?=\n\nx\n");
    CHECK(header(s, "Subject") == "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82 \xD0\xBC\xD0\xB8\xD1\x80");  // Привет мир
  }
  SUBCASE("display names in address headers") {
    auto s = decode("From: =?UTF-8?Q?Cas=C3=ADno_Royal?= <spam@example.com>\n\nx\n");
    CHECK(contains(header(s, "From"), "Cas\xC3\xADno Royal"));
  }
  SUBCASE("raw 8-bit header bytes are made UTF-8") {
    auto s = decode("Subject: caf\xE9\n\nx\n");
    CHECK(header(s, "Subject") == "caf\xC3\xA9");
  }
}

TEST_CASE("decode: base64 body") {
  auto s = decode("Subject: t\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
                  "Content-Transfer-Encoding: base64\n\n"
                  "SGVsbG8gZnJvbSB0aGUg\nY2FzaW5vLCB3aW4gYmlnIQo=\n");
  REQUIRE(texts(s).size() == 1);
  CHECK(texts(s)[0] == "Hello from the casino, win big!\n");
}

TEST_CASE("decode: quoted-printable body, soft line breaks joined") {
  auto s = decode("Subject: t\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
                  "Content-Transfer-Encoding: quoted-printable\n\n"
                  "buy vi=\nagra =C3=BCber cheap=3D\n");
  REQUIRE(texts(s).size() == 1);
  CHECK(texts(s)[0] == "buy viagra \xC3\xBC" "ber cheap=\r\n");
}

TEST_CASE("decode: a part's charset is converted to UTF-8") {
  SUBCASE("ISO-8859-1, quoted-printable") {
    auto s = decode("Content-Type: text/plain; charset=ISO-8859-1\nContent-Transfer-Encoding: quoted-printable\n\n=FCber\n");
    CHECK(texts(s).at(0) == "\xC3\xBC" "ber\r\n");
  }
  SUBCASE("KOI8-R, base64") {
    auto s = decode("Content-Type: text/plain; charset=\"koi8-r\"\nContent-Transfer-Encoding: base64\n\n8NLJ18XUIM3J0g==\n");
    CHECK(texts(s).at(0) == "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82 \xD0\xBC\xD0\xB8\xD1\x80");
  }
  SUBCASE("windows-1252, 8bit") {
    auto s = decode("Content-Type: text/plain; charset=windows-1252\nContent-Transfer-Encoding: 8bit\n\n\x80 5\n");
    CHECK(texts(s).at(0) == "\xE2\x82\xAC 5\r\n");
  }
  SUBCASE("an alias GMime knows (latin1)") {
    auto s = decode("Content-Type: text/plain; charset=latin1\n\ncaf\xE9\n");
    CHECK(texts(s).at(0) == "caf\xC3\xA9\r\n");
  }
  SUBCASE("an unknown charset: bytes repaired, nothing lost") {
    auto s = decode("Content-Type: text/plain; charset=x-no-such-charset\n\ncasino caf\xE9\n");
    CHECK(texts(s).at(0) == "casino caf\xC3\xA9\r\n");
  }
  SUBCASE("no charset, 8-bit UTF-8 kept") {
    auto s = decode("Content-Type: text/plain\n\n\xC3\xBC" "ber\n");
    CHECK(texts(s).at(0) == "\xC3\xBC" "ber\r\n");
  }
}

TEST_CASE("decode: text/html is reduced to its words") {
  auto s = decode("Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
                  "<html><body><p>Play <b>ca</b>sino =\nnow</p><script>var x=3D'hidden';</script></body></html>\n");
  REQUIRE(texts(s).size() == 1);
  CHECK(labels(s)[0] == "text/html");
  CHECK(contains(texts(s)[0], "Play casino now"));
  CHECK(!contains(texts(s)[0], "hidden"));
  CHECK(!contains(texts(s)[0], "<"));
}

TEST_CASE("decode: nested multiparts are walked; non-text parts are not decoded") {
  auto s = decode(
      "Subject: nested\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"outer\"\n\n"
      "preamble\n"
      "--outer\nContent-Type: multipart/alternative; boundary=\"inner\"\n\n"
      "--inner\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\ndmlhZ3Jh\n"
      "--inner\nContent-Type: text/html; charset=utf-8\n\n<p>html <i>part</i></p>\n"
      "--inner--\n"
      "--outer\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\ndmlhZ3Jh\n"
      "--outer\nContent-Type: text/x-custom\n\ncustom text\n"
      "--outer--\nepilogue\n");
  auto t = texts(s);
  REQUIRE(t.size() == 3);
  CHECK(t[0] == "viagra");
  CHECK(contains(t[1], "html part"));
  CHECK(contains(t[2], "custom text"));
  CHECK(labels(s) == std::vector<std::string>{"text/plain", "text/html", "text/x-custom"});
}

TEST_CASE("decode: a message/rfc822 part gives its headers and its parts") {
  auto s = decode(
      "Subject: outer\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n"
      "--b\nContent-Type: text/plain\n\nsee attached\n"
      "--b\nContent-Type: message/rfc822\n\n"
      "Subject: =?UTF-8?B?dmlhZ3Jh?=\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
      "inner =C3=BCber\n"
      "--b--\n");
  std::vector<std::string> subjects;
  for (const auto& seg : s)
    if (seg.kind == SegmentKind::Header && seg.label == "Subject") subjects.push_back(seg.text);
  CHECK(subjects == std::vector<std::string>{"outer", "viagra"});
  auto t = texts(s);
  REQUIRE(t.size() == 2);
  CHECK(contains(t[0], "see attached"));
  CHECK(contains(t[1], "inner \xC3\xBC" "ber"));
}

TEST_CASE("decode: broken MIME yields what can be read") {
  SUBCASE("missing closing boundary") {
    auto s = decode("Content-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nfirst\n"
                    "--b\nContent-Type: text/plain\n\nsecond casino\n");
    auto t = texts(s);
    REQUIRE(t.size() == 2);
    CHECK(contains(t[1], "second casino"));
  }
  SUBCASE("boundary never seen at all") {
    auto s = decode("Subject: s\nContent-Type: multipart/mixed; boundary=\"nowhere\"\n\nno parts here\n");
    CHECK(texts(s).empty());  // no leaf part; the headers are still there
    CHECK(header(s, "Subject") == "s");
  }
  SUBCASE("bad base64 characters are skipped") {
    auto s = decode("Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\ndml!!h\xFFZ3*Jh\n");
    CHECK(texts(s).at(0) == "viagra");
  }
  SUBCASE("truncated in the middle of a base64 part") {
    auto s = decode("Content-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n"
                    "Content-Transfer-Encoding: base64\n\nSGVsbG8gZnJvbSB0aGUgY2Fza");
    CHECK(contains(texts(s).at(0), "Hello from the cas"));
  }
  SUBCASE("truncated in the headers") {
    auto s = decode("Subject: only a head");
    CHECK(header(s, "Subject") == "only a head");
  }
  SUBCASE("no header block at all") {
    auto s = decode("just some words\nand more\n");
    std::string all;
    for (const auto& seg : s) all += seg.text;
    CHECK(contains(all, "words"));
  }
  SUBCASE("bad encoded words are kept as text") {
    auto s = decode("Subject: =?UTF-8?B?not base64!?= =?nocharset?Q?x?= =?UTF-8?X?y?=\n\nb\n");
    CHECK(header(s, "Subject") != "<none>");
  }
  SUBCASE("empty message") { (void)decode_message(""); }
}

TEST_CASE("decode: nesting past the limit is not looked into, and does not crash") {
  std::string m = "Subject: deep\nContent-Type: multipart/mixed; boundary=\"b0\"\n\n";
  const int depth = 2000;
  for (int i = 1; i < depth; ++i) m += "--b" + std::to_string(i - 1) + "\nContent-Type: multipart/mixed; boundary=\"b" + std::to_string(i) + "\"\n\n";
  m += "--b" + std::to_string(depth - 1) + "\nContent-Type: text/plain\n\ndeepest\n";
  auto s = decode(m);
  CHECK(header(s, "Subject") == "deep");
  CHECK(texts(s).empty());  // deeper than max_depth

  DecodeLimits shallow;
  shallow.max_depth = 4;
  auto s2 = decode_message(crlf("Content-Type: multipart/mixed; boundary=\"a\"\n\n--a\n"
                                "Content-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nok\n--b--\n--a--\n"),
                           shallow);
  CHECK(texts(s2).size() == 1);
}

TEST_CASE("decode: random bytes never crash; the output is always UTF-8") {
  std::mt19937 rng(42);
  const std::string pieces[] = {"Content-Type: multipart/mixed; boundary=\"x\"\n", "--x\n", "--x--\n",
                                "Content-Type: text/html; charset=koi8-r\n", "Content-Transfer-Encoding: base64\n",
                                "Content-Transfer-Encoding: quoted-printable\n", "\n", "=?UTF-8?B?", "?=", "<p>", "=C3=",
                                "Content-Type: message/rfc822\n", "\xFF\xFE", "Subject: ", "&#x", "\r"};
  for (int round = 0; round < 300; ++round) {
    std::string m;
    int n = static_cast<int>(rng() % 60);
    for (int i = 0; i < n; ++i) {
      if (rng() % 3 == 0) m += pieces[rng() % std::size(pieces)];
      else m.push_back(static_cast<char>(rng()));
    }
    for (const auto& seg : decode_message(m)) {
      CHECK(g_utf8_validate(seg.text.data(), static_cast<gssize>(seg.text.size()), nullptr));
    }
  }
}

TEST_CASE("decode: concurrent decoding from several threads") {
  const std::string m = crlf("Subject: =?KOI8-R?B?8NLJ18XUIM3J0g==?=\nContent-Type: multipart/alternative; boundary=\"b\"\n\n"
                             "--b\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\n=FCber\n"
                             "--b\nContent-Type: text/html; charset=windows-1252\n\n<b>\x80</b>\n--b--\n");
  const auto expected = decode_message(m);
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        auto got = decode_message(m);
        if (got.size() != expected.size()) ++mismatches;
        else
          for (std::size_t k = 0; k < got.size(); ++k)
            if (got[k].text != expected[k].text) ++mismatches;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(mismatches.load() == 0);
}
