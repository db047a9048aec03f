// policies/rspamd_verdict.cc — see rspamd_verdict.h. Strict about types (a field of the wrong type
// is a malformed answer, not a guess), lenient about fields it does not know (rspamd adds new
// ones between versions: "symbols", "urls", "thresholds", "time_real", ...).
#include "policies/rspamd_verdict.h"

#include <algorithm>
#include <cstdio>
#include <vector>

#include <nlohmann/json.hpp>

#include "policies/http.h"  // OnError

namespace dotgate::policy {

namespace {

using nlohmann::json;

// RFC 5322 2.1.1: a line is at most 998 octets without its CRLF; the session folds nothing, so a
// field ("Name: value") must fit in one.
constexpr std::size_t kMaxFieldLine = 998;
// A reply line is at most 512 octets (RFC 5321 4.5.3.1.5); code and enhanced code take 10.
constexpr std::size_t kMaxReplyText = 400;
// rspamd is trusted, but a runaway milter_headers configuration must not bloat every message:
// more fields than this are dropped.
constexpr std::size_t kMaxAddedFields = 64;
// Octets of the rewritten subject kept before encoding: encoded (B, at most 45 octets per 75
// character word) 400 octets take under 700 characters, so "Subject: " + that fits one line.
constexpr std::size_t kMaxSubjectOctets = 400;

enum class Kind { Reject, SoftReject, Greylist, AddHeader, RewriteSubject, NoAction };

struct ActionName {
  const char* name;
  Kind kind;
};
// rspamd's action names, as /checkv2 spells them (rspamd_action_to_str).
constexpr ActionName kActionNames[] = {
    {"reject", Kind::Reject},          {"soft reject", Kind::SoftReject},
    {"greylist", Kind::Greylist},      {"add header", Kind::AddHeader},
    {"rewrite subject", Kind::RewriteSubject}, {"no action", Kind::NoAction},
};

struct FailReply {
  Kind kind;
  int code;
  const char* enhanced;
  const char* text;  // when rspamd gave no smtp_message
};
// One table for every refusal, most severe first.
constexpr FailReply kFailReplies[] = {
    {Kind::Reject, 550, "5.7.1", "Spam message rejected"},
    {Kind::SoftReject, 451, "4.7.1", "Message deferred by content filter, try again later"},
    {Kind::Greylist, 451, "4.7.1", "Greylisted, try again later"},
};

const char* kind_name(Kind k) {
  for (const auto& a : kActionNames)
    if (a.kind == k) return a.name;
  return "?";
}

bool equal_nocase(std::string_view a, std::string_view b) {
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [&](char x, char y) { return lower(x) == lower(y); });
}

// RFC 5322 3.6.8: a field name is 1+ printable US-ASCII octets other than ':'.
bool valid_field_name(std::string_view n) {
  if (n.empty() || n.size() > 76) return false;
  return std::all_of(n.begin(), n.end(), [](char c) { return c >= 33 && c <= 126 && c != ':'; });
}

// Unfolds (CRLF before white space goes, RFC 5322 2.2.3) and makes every other control octet a
// space: a CR or LF left in a value would end the field early and let the text after it become a
// header field (or the body) of its own.
std::string unfolded(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(v[i]);
    if (c == '\r' || c == '\n') {
      bool folded = i + 1 < v.size() && (v[i + 1] == ' ' || v[i + 1] == '\t');
      bool crlf = c == '\r' && i + 1 < v.size() && v[i + 1] == '\n';
      if (crlf) folded = i + 2 < v.size() && (v[i + 2] == ' ' || v[i + 2] == '\t');
      if (crlf) ++i;
      if (!folded) out += ' ';
      continue;
    }
    out += (c < 0x20 && c != '\t') || c == 0x7f ? ' ' : static_cast<char>(c);
  }
  return out;
}

// Text for an SMTP reply line: printable ASCII only (no SMTPUTF8 promise here), capped.
std::string reply_text(std::string_view v, const char* fallback) {
  std::string out;
  for (char ch : v.substr(0, kMaxReplyText)) {
    unsigned char c = static_cast<unsigned char>(ch);
    out += c < 0x20 || c == 0x7f ? ' ' : c >= 0x80 ? '?' : ch;
  }
  if (out.find_first_not_of(' ') == std::string::npos) return fallback;
  return out;
}

// `n` octets of `s` or fewer, never ending inside a UTF-8 sequence.
std::size_t utf8_cut(std::string_view s, std::size_t n) {
  if (n >= s.size()) return s.size();
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return n;
}

std::string base64(std::string_view in) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kAlphabet[(v >> s) & 63];
  }
  if (i < in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string format_score(double score) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", score);
  return buf;
}

// The milter block's edits, or why it is malformed.
struct MilterEdits {
  std::vector<std::pair<std::string, std::string>> add;
  std::vector<std::string> remove;
  std::vector<std::string> dropped;  // names of fields left out (bad name, too long, too many)
};

std::string milter_edits(const json& milter, MilterEdits& out) {
  if (!milter.is_object()) return "\"milter\" is not an object";
  if (auto it = milter.find("remove_headers"); it != milter.end()) {
    if (!it->is_object()) return "\"milter.remove_headers\" is not an object";
    for (const auto& [name, order] : it->items()) {
      if (!order.is_number()) return "\"milter.remove_headers\" value is not a number";
      if (valid_field_name(name)) out.remove.push_back(name);
      else out.dropped.push_back(name.substr(0, 40));
    }
  }
  if (auto it = milter.find("add_headers"); it != milter.end()) {
    if (!it->is_object()) return "\"milter.add_headers\" is not an object";
    auto add_one = [&](const std::string& name, const json& v) -> std::string {
      const json* value = &v;
      if (v.is_object()) {
        auto vit = v.find("value");
        if (vit == v.end()) return "\"milter.add_headers\" entry has no \"value\"";
        value = &*vit;
      }
      if (!value->is_string()) return "\"milter.add_headers\" value is not a string";
      std::string text = unfolded(value->get<std::string>());
      if (!valid_field_name(name) || name.size() + 2 + text.size() > kMaxFieldLine ||
          out.add.size() >= kMaxAddedFields) {
        out.dropped.push_back(name.substr(0, 40));
        return {};
      }
      out.add.emplace_back(name, std::move(text));
      return {};
    };
    for (const auto& [name, v] : it->items()) {
      if (v.is_array()) {
        for (const auto& e : v) {
          if (e.is_array()) return "\"milter.add_headers\" value is not a string";
          if (auto why = add_one(name, e); !why.empty()) return why;
        }
      } else if (auto why = add_one(name, v); !why.empty()) {
        return why;
      }
    }
  }
  return {};
}

RspamdAnswer malformed(std::string detail) {
  RspamdAnswer a;
  a.error = "malformed";
  a.detail = std::move(detail);
  return a;
}

Kind by_score(double score, const RspamdThresholds& t) {
  if (t.reject && score >= *t.reject) return Kind::Reject;
  if (t.tempfail && score >= *t.tempfail) return Kind::SoftReject;
  if (t.add_header && score >= *t.add_header) return Kind::AddHeader;
  return Kind::NoAction;
}

}  // namespace

RspamdThresholds RspamdThresholds::overlaid(const RspamdThresholds& over) const {
  RspamdThresholds t = *this;
  if (over.reject) t.reject = over.reject;
  if (over.tempfail) t.tempfail = over.tempfail;
  if (over.add_header) t.add_header = over.add_header;
  return t;
}

std::string rspamd_encode_header_value(std::string_view value) {
  bool plain = std::all_of(value.begin(), value.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
  if (plain) return std::string(value);
  // 45 octets -> 60 base64 characters; with "=?UTF-8?B?" and "?=" a word is 72 <= 75 (RFC 2047 2).
  std::string out;
  while (!value.empty()) {
    std::size_t n = utf8_cut(value, 45);
    if (n == 0) n = std::min<std::size_t>(value.size(), 45);  // not UTF-8 at all: cut anywhere
    if (!out.empty()) out += ' ';
    out += "=?UTF-8?B?" + base64(value.substr(0, n)) + "?=";
    value.remove_prefix(n);
  }
  return out;
}

RspamdAnswer rspamd_verdict(int status, std::string_view body, const RspamdThresholds& thresholds) {
  if (status < 200 || status > 299) {
    RspamdAnswer a;
    a.error = "status";
    a.detail = "status " + std::to_string(status);
    return a;
  }
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return malformed("not JSON");
  if (!j.is_object()) return malformed("not a JSON object");
  auto action_it = j.find("action");
  if (action_it == j.end() || !action_it->is_string()) return malformed("no \"action\" string");
  auto score_it = j.find("score");
  if (score_it == j.end() || !score_it->is_number()) return malformed("no \"score\" number");
  double score = score_it->get<double>();

  const std::string rspamd_action = action_it->get<std::string>();
  std::optional<Kind> said;
  for (const auto& a : kActionNames)
    if (rspamd_action == a.name) said = a.kind;
  // Even when thresholds decide, an action we do not know means an rspamd we do not understand.
  if (!said) return malformed("unknown action \"" + reply_text(rspamd_action.substr(0, 40), "") + "\"");

  std::string smtp_message;
  if (auto it = j.find("messages"); it != j.end()) {
    if (!it->is_object()) return malformed("\"messages\" is not an object");
    if (auto m = it->find("smtp_message"); m != it->end()) {
      if (!m->is_string()) return malformed("\"messages.smtp_message\" is not a string");
      smtp_message = m->get<std::string>();
    }
  }
  std::optional<std::string> subject;
  if (auto it = j.find("subject"); it != j.end()) {
    if (!it->is_string()) return malformed("\"subject\" is not a string");
    subject = it->get<std::string>();
  }
  MilterEdits milter;
  if (auto it = j.find("milter"); it != j.end()) {
    if (auto why = milter_edits(*it, milter); !why.empty()) return malformed(why);
  }

  Kind kind = thresholds.any() ? by_score(score, thresholds) : *said;
  std::string reason = "rspamd: " + std::string(kind_name(kind)) + " (score " + format_score(score);
  if (thresholds.any()) reason += ", by threshold; rspamd said " + std::string(kind_name(*said));
  reason += ")";

  RspamdAnswer answer;
  answer.ok = true;
  for (const auto& f : kFailReplies) {
    if (f.kind != kind) continue;
    answer.verdict = Verdict::fail(f.code, f.enhanced, reply_text(smtp_message, f.text), std::move(reason));
    return answer;
  }

  // A pass: our fields (for add header / rewrite subject), then rspamd's milter edits.
  MessageEdit& edit = answer.verdict.edit;
  std::vector<std::pair<std::string, std::string>> ours;
  if (kind == Kind::AddHeader || kind == Kind::RewriteSubject) {
    ours.emplace_back("X-Spam", "Yes");
    ours.emplace_back("X-Spam-Score", format_score(score));
    ours.emplace_back("X-Spam-Action", kind_name(kind));
  }
  if (kind == Kind::RewriteSubject) {
    if (subject) {
      std::string s = unfolded(*subject);
      s.resize(utf8_cut(s, kMaxSubjectOctets));
      ours.emplace_back("Subject", rspamd_encode_header_value(s));
    } else {
      reason += "; no \"subject\" to rewrite with";
    }
  }
  for (auto& [name, value] : ours) {
    bool rspamd_adds = std::any_of(milter.add.begin(), milter.add.end(),
                                   [&](const auto& f) { return equal_nocase(f.first, name); });
    edit.remove_headers.push_back(name);  // the message's own (forged) field goes either way
    if (!rspamd_adds) edit.add_headers.emplace_back(std::move(name), std::move(value));
  }
  for (auto& name : milter.remove) {
    bool listed = std::any_of(edit.remove_headers.begin(), edit.remove_headers.end(),
                              [&](const std::string& n) { return equal_nocase(n, name); });
    if (!listed) edit.remove_headers.push_back(std::move(name));
  }
  for (auto& f : milter.add) edit.add_headers.push_back(std::move(f));
  if (!milter.dropped.empty()) {
    reason += "; dropped rspamd's field(s)";
    for (const auto& n : milter.dropped) reason += " " + reply_text(n, "?");
  }
  answer.verdict.reason = std::move(reason);
  return answer;
}

std::string rspamd_error_label(std::string_view client_error) { return http::error_label(client_error); }

Verdict rspamd_on_error(OnError on_error, const std::string& label, const std::string& detail) {
  Verdict v;
  switch (on_error) {
    case OnError::Accept:
      v = Verdict{Action::Pass, {}, "rspamd error (accepted): " + detail};
      break;
    case OnError::Reject:
      v = Verdict::fail(550, "5.7.1", "Message could not be checked", "rspamd error: " + detail);
      break;
    case OnError::Tempfail:
      v = Verdict::fail(451, "4.7.0", "Message could not be checked, try again later", "rspamd error: " + detail);
      break;
  }
  v.error = label;
  return v;
}

}  // namespace dotgate::policy
