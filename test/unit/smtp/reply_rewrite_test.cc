// test/unit/smtp/reply_rewrite_test.cc — which downstream replies are possible for each command,
// and the exact reply the client gets instead of each.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "lib/smtp/reply_rewrite.h"

using dotgate::smtp::context_for;
using dotgate::smtp::Reply;
using dotgate::smtp::reply_allowed;
using dotgate::smtp::ReplyContext;
using dotgate::smtp::rewrite_reply;
using dotgate::smtp::Verb;

TEST_CASE("context_for") {
  CHECK(context_for(Verb::Ehlo) == ReplyContext::Ehlo);
  CHECK(context_for(Verb::Helo) == ReplyContext::Helo);
  CHECK(context_for(Verb::Data) == ReplyContext::Data);
  for (Verb v : {Verb::Mail, Verb::Rcpt, Verb::Rset, Verb::Noop, Verb::Quit, Verb::Help, Verb::Vrfy,
                 Verb::Expn, Verb::Auth, Verb::Unknown}) {
    CHECK(context_for(v) == ReplyContext::Other);
  }
}

TEST_CASE("reply_allowed: table") {
  struct Row {
    ReplyContext context;
    int code;
    bool allowed;
  };
  const std::vector<Row> rows = {
      {ReplyContext::Greeting, 220, true},  {ReplyContext::Greeting, 354, true},
      {ReplyContext::Greeting, 199, true},  {ReplyContext::Ehlo, 250, true},
      {ReplyContext::Ehlo, 421, true},      {ReplyContext::Ehlo, 554, true},
      {ReplyContext::Ehlo, 354, false},     {ReplyContext::Helo, 250, true},
      {ReplyContext::Helo, 334, false},     {ReplyContext::Data, 354, true},
      {ReplyContext::Data, 451, true},      {ReplyContext::Data, 554, true},
      {ReplyContext::Data, 250, false},     {ReplyContext::Data, 334, false},
      {ReplyContext::DataEnd, 250, true},   {ReplyContext::DataEnd, 452, true},
      {ReplyContext::DataEnd, 552, true},   {ReplyContext::DataEnd, 354, false},
      {ReplyContext::DataEnd, 353, false},  {ReplyContext::Other, 250, true},
      {ReplyContext::Other, 221, true},     {ReplyContext::Other, 214, true},
      {ReplyContext::Other, 252, true},     {ReplyContext::Other, 451, true},
      {ReplyContext::Other, 550, true},     {ReplyContext::Other, 354, false},
      {ReplyContext::Other, 334, false},    {ReplyContext::Other, 199, false},
      {ReplyContext::Other, 600, false},    {ReplyContext::Other, 260, false},
  };
  for (const auto& row : rows) {
    INFO("context " << static_cast<int>(row.context) << " code " << row.code);
    CHECK(reply_allowed(row.context, Reply{row.code, {"x"}}) == row.allowed);
  }
}

TEST_CASE("rewrite_reply: greetings are 220, 421 or 554, text kept") {
  struct Row {
    int in;
    int out;
  };
  for (Row row : {Row{220, 220}, Row{250, 220}, Row{221, 220}, Row{421, 421}, Row{450, 421},
                  Row{554, 554}, Row{550, 554}, Row{354, 421}, Row{199, 421}, Row{0, 421}}) {
    INFO(row.in);
    Reply r = rewrite_reply(ReplyContext::Greeting, Reply{row.in, {"mx.example.org ESMTP", "more"}});
    CHECK(r.code == row.out);
    CHECK(r.lines == std::vector<std::string>{"mx.example.org ESMTP", "more"});
  }
}

TEST_CASE("rewrite_reply: no enhanced code for EHLO, HELO and 354") {
  CHECK(rewrite_reply(ReplyContext::Ehlo, Reply{250, {"mx", "PIPELINING"}}).serialize() ==
        "250-mx\r\n250 PIPELINING\r\n");
  CHECK(rewrite_reply(ReplyContext::Ehlo, Reply{550, {"go away"}}).serialize() == "550 go away\r\n");
  CHECK(rewrite_reply(ReplyContext::Helo, Reply{250, {"mx"}}).serialize() == "250 mx\r\n");
  CHECK(rewrite_reply(ReplyContext::Data, Reply{354, {"End data with <CR><LF>.<CR><LF>"}}).serialize() ==
        "354 End data with <CR><LF>.<CR><LF>\r\n");
}

TEST_CASE("rewrite_reply: enhanced codes added where missing") {
  struct Row {
    ReplyContext context;
    Reply in;
    std::string out;
  };
  const std::vector<Row> rows = {
      {ReplyContext::Other, Reply{250, {"Ok"}}, "250 2.0.0 Ok\r\n"},
      {ReplyContext::Other, Reply{250, {"2.1.0 Ok"}}, "250 2.1.0 Ok\r\n"},
      {ReplyContext::Other, Reply{221, {"Bye"}}, "221 2.0.0 Bye\r\n"},
      {ReplyContext::Other, Reply{214, {"See RFC 5321"}}, "214 2.0.0 See RFC 5321\r\n"},
      {ReplyContext::Other, Reply{252, {"Cannot VRFY user"}}, "252 2.0.0 Cannot VRFY user\r\n"},
      {ReplyContext::Other, Reply{451, {"Try later"}}, "451 4.0.0 Try later\r\n"},
      {ReplyContext::Other, Reply{550, {"No such user"}}, "550 5.0.0 No such user\r\n"},
      {ReplyContext::Other, Reply{550, {"5.1.1 No such user"}}, "550 5.1.1 No such user\r\n"},
      {ReplyContext::Other, Reply{550, {"4.1.1 wrong class"}}, "550 5.0.0 4.1.1 wrong class\r\n"},
      {ReplyContext::Other, Reply{250, {}}, "250 2.0.0\r\n"},
      {ReplyContext::Other, Reply{250, {""}}, "250 2.0.0\r\n"},
      {ReplyContext::Other, Reply{250, {"2.0.0"}}, "250 2.0.0\r\n"},
      // RFC 2034: on every line; lines take the first line's code.
      {ReplyContext::Other, Reply{214, {"Commands:", "HELO EHLO"}}, "214-2.0.0 Commands:\r\n214 2.0.0 HELO EHLO\r\n"},
      {ReplyContext::Other, Reply{550, {"5.7.1 Rejected", "see policy"}},
       "550-5.7.1 Rejected\r\n550 5.7.1 see policy\r\n"},
      {ReplyContext::Other, Reply{550, {"5.7.1 a", "5.7.2 b"}}, "550-5.7.1 a\r\n550 5.7.2 b\r\n"},
      {ReplyContext::Data, Reply{554, {"No valid recipients"}}, "554 5.0.0 No valid recipients\r\n"},
      {ReplyContext::Data, Reply{451, {"4.3.0 Busy"}}, "451 4.3.0 Busy\r\n"},
      {ReplyContext::DataEnd, Reply{250, {"Ok: queued as ABC"}}, "250 2.0.0 Ok: queued as ABC\r\n"},
      {ReplyContext::DataEnd, Reply{250, {"2.0.0 Ok: queued as ABC"}}, "250 2.0.0 Ok: queued as ABC\r\n"},
      {ReplyContext::DataEnd, Reply{552, {"Too big"}}, "552 5.0.0 Too big\r\n"},
  };
  for (const auto& row : rows) {
    INFO(row.out);
    CHECK(rewrite_reply(row.context, row.in).serialize() == row.out);
  }
}
