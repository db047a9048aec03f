// policies/rspamd_verdict.h — what an rspamd /checkv2 answer means for the message: pure (no
// sockets, no loop), called by policies/rspamd.cc once the answer is in, and by the unit tests.
//
// Input: the HTTP status, the JSON body, and the score thresholds of the transaction's profile.
// Output: a Verdict, or why the answer is unusable (the caller applies on_error).
//
// Without thresholds rspamd's own "action" decides:
//   reject                   -> fail 550 5.7.1 (rspamd's messages.smtp_message, else a default)
//   soft reject, greylist    -> fail 451 4.7.1 (likewise)
//   add header               -> pass, X-Spam: Yes / X-Spam-Score / X-Spam-Action added
//   rewrite subject          -> pass, the same headers, Subject replaced by rspamd's "subject"
//   no action                -> pass
// With thresholds (any of reject_score, tempfail_score, add_header_score set for the profile) the
// score alone decides: >= reject -> reject, else >= tempfail -> soft reject, else >= add_header ->
// add header, else pass; a threshold that is not set never fires. rspamd's action is then
// IGNORED, forced actions included: GTUBE, a ratelimit's or a greylist module's soft reject, a
// multimap's prefilter reject count only through the score rspamd gives them (for a forced action
// that is the threshold of that action in rspamd's own config: GTUBE scores rspamd's reject
// score, 15 by default; a soft reject forced with no score of its own may then pass). Whoever
// sets thresholds takes the decision away from rspamd, on purpose. rspamd's "rewrite subject"
// has no threshold of its own here: under thresholds that score adds the X-Spam headers only.
//
// On every pass, whatever decided, rspamd's milter block is applied too (as rspamd's own milter
// does: DKIM signatures and milter_headers' fields come that way on "no action" as well):
//   milter.add_headers:    {"Name": "value" | {"value": "v", "order": n} | [ either, ... ]}
//   milter.remove_headers: {"Name": n}  -> every field of that name goes (MessageEdit cannot
//                                          remove the n-th one only; all of them is the safe side)
// Our own X-Spam-* fields (and the new Subject) replace any field of the same name the message
// brought (a sender must not forge "X-Spam-Score: -10" next to ours), and give way to a field of
// the same name that rspamd's milter block adds (then rspamd's value is the only one).
// Values are unfolded; a field that would not fit in one 998-octet line (RFC 5322 2.1.1: the
// session folds nothing) is dropped and named in the reason; the subject is cut to fit instead.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "policies/policy.h"

namespace dotgate::policy {

enum class OnError;

struct RspamdThresholds {
  std::optional<double> reject;
  std::optional<double> tempfail;    // rspamd's "soft reject"
  std::optional<double> add_header;
  bool any() const { return reject || tempfail || add_header; }
  // `over`'s thresholds where it has them, ours elsewhere (a profile names only what differs).
  RspamdThresholds overlaid(const RspamdThresholds& over) const;
};

struct RspamdAnswer {
  bool ok = false;
  Verdict verdict;     // when ok
  std::string error;   // when !ok: "status" or "malformed" (Verdict::error's label)
  std::string detail;  // when !ok: for the log ("status 500", "no \"score\" number")
};
RspamdAnswer rspamd_verdict(int status, std::string_view body, const RspamdThresholds& thresholds);

// http::ClientResult::error -> Verdict::error's label: "connect", "timeout", "closed",
// "malformed".
std::string rspamd_error_label(std::string_view client_error);

// What on_error makes of a failure; `label` goes to Verdict::error, `detail` to the reason.
Verdict rspamd_on_error(OnError on_error, const std::string& label, const std::string& detail);

// RFC 2047 B encoding (UTF-8) of a header value with octets outside printable ASCII, in
// encoded-words of at most 75 characters separated by spaces, never splitting a UTF-8
// character; printable ASCII comes back as it is. Exposed for the unit tests.
std::string rspamd_encode_header_value(std::string_view value);

}  // namespace dotgate::policy
