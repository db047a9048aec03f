// Unit tests for lib/smtp/prdr: the 353, the per-recipient replies and the final reply.
#include <doctest/doctest.h>

#include "lib/smtp/prdr.h"

using namespace dotgate::smtp;

namespace {
const Reply kStart = Reply::make(353, "", "Content analysis has started");
std::vector<int> codes(const PrdrReplies& r) {
  std::vector<int> out;
  for (const auto& x : r.preface) out.push_back(x.code);
  out.push_back(r.final_reply.code);
  return out;
}
}  // namespace

TEST_CASE("mixed: the refused recipient keeps its refusal in its RCPT position") {
  auto r = assemble_prdr({"a@x", "b@x", "c@x"}, {Reply::make(550, "5.7.1", "no"), std::nullopt, std::nullopt},
                         Reply::make(250, "2.0.0", "queued as 1"), kStart);
  CHECK(codes(r) == std::vector<int>{353, 550, 250, 250, 250});
  CHECK(r.preface[2].lines[0].find("<b@x>") != std::string::npos);
  CHECK(r.final_reply.lines[0] == "2.0.0 queued as 1");  // the MTA's own 250
}

TEST_CASE("every recipient refused: 550 final, or 451 when one refusal is temporary") {
  auto all5 = assemble_prdr({"a@x", "b@x"}, {Reply::make(550, "5.7.1", "no"), Reply::make(554, "5.7.1", "no")},
                            Reply::make(451, "4.3.0", "not sent"), kStart);
  CHECK(codes(all5) == std::vector<int>{353, 550, 554, 550});
  auto mixed = assemble_prdr({"a@x", "b@x"}, {Reply::make(550, "5.7.1", "no"), Reply::make(451, "4.7.1", "later")},
                             Reply::make(451, "4.3.0", "not sent"), kStart);
  CHECK(codes(mixed) == std::vector<int>{353, 550, 451, 451});
}

TEST_CASE("the MTA failed: the accepted recipients hear its 4xx, never a 250") {
  auto r = assemble_prdr({"a@x", "b@x", "c@x"}, {std::nullopt, Reply::make(550, "5.7.1", "no"), std::nullopt},
                         Reply::make(451, "4.4.2", "Mail server error"), kStart);
  CHECK(codes(r) == std::vector<int>{353, 451, 550, 451, 451});
  auto rejected = assemble_prdr({"a@x"}, {std::nullopt}, Reply::make(554, "5.6.0", "bad"), kStart);
  CHECK(codes(rejected) == std::vector<int>{353, 554, 550});
}
