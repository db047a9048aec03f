// Unit tests for lib/mime/html: the words a reader sees, and nothing a reader does not.
#include <doctest/doctest.h>

#include <string>

#include "lib/mime/html.h"

using dotgate::mime::html_to_text;

TEST_CASE("html: tags go; block tags separate words, inline tags do not") {
  CHECK(html_to_text("<p>Hello</p><p>world</p>") == " Hello  world ");
  CHECK(html_to_text("vi<b></b>agra") == "viagra");
  CHECK(html_to_text("vi<span style=\"x\">ag</span>ra") == "viagra");
  CHECK(html_to_text("one<br>two<BR/>three") == "one two three");
  CHECK(html_to_text("<TD>cell</TD><td>next</td>") == " cell  next ");
}

TEST_CASE("html: attribute values are skipped, a '>' inside quotes ends no tag") {
  CHECK(html_to_text("<a href=\"x>y\" title='a>b'>link</a>") == "link");
  CHECK(html_to_text("<img alt=\"casino\">") == " ");
  // A stray quote (not after '=') opens nothing: the text after the tag stays visible.
  CHECK(html_to_text("<b a'>viagra</b>") == "viagra");
}

TEST_CASE("html: comments, declarations, script and style bodies are removed") {
  CHECK(html_to_text("<!DOCTYPE html><html><head><title>Title</title>"
                     "<style>p { color: red }</style></head><body>vi<!-- x -->agra"
                     "<script type=\"text/javascript\">var casino = 1;</script>end</body></html>") ==
        "   Title   viagraend  ");
  CHECK(html_to_text("a<?xml version=\"1.0\"?>b") == "ab");
  CHECK(html_to_text("<SCRIPT>x</ScRiPt>visible") == "visible");
  CHECK(html_to_text("<style>never closed casino") == "");
}

TEST_CASE("html: character references") {
  CHECK(html_to_text("fish &amp; chips") == "fish & chips");
  CHECK(html_to_text("&lt;b&gt;") == "<b>");
  CHECK(html_to_text("caf&eacute; &Uuml;ber &szlig;") == "caf\xC3\xA9 \xC3\x9C" "ber \xC3\x9F");
  CHECK(html_to_text("&#118;&#x69;&#X61;gra") == "viagra");
  CHECK(html_to_text("a&nbsp;b") == "a\xC2\xA0" "b");
  CHECK(html_to_text("via&shy;gra") == "via\xC2\xAD" "gra");
  // Unknown names, bare ampersands and reference without digits stay as written.
  CHECK(html_to_text("&bogus; AT&T &#; &#x;") == "&bogus; AT&T &#; &#x;");
  // Out of range or NUL: the replacement character.
  CHECK(html_to_text("&#0;&#1114112;&#99999999999999999999;") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST_CASE("html: a '<' that opens no tag is text; broken markup hides only what follows it") {
  CHECK(html_to_text("1 < 2 and 3 <4") == "1 < 2 and 3 <4");
  CHECK(html_to_text("a<") == "a<");
  CHECK(html_to_text("visible <b unterminated") == "visible ");
  CHECK(html_to_text("visible <!-- unterminated") == "visible ");
  CHECK(html_to_text("</>x") == "</>x");
}

TEST_CASE("html: any input is survived, in linear time") {
  std::string nasty;
  for (int i = 0; i < 20000; ++i) nasty += "<a href='<!--&#x";
  (void)html_to_text(nasty);
  std::string scripts;
  for (int i = 0; i < 20000; ++i) scripts += "<script></scrip";
  (void)html_to_text(scripts);
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  (void)html_to_text(all + all);
}
