// lib/smtp/reply_regex.cc — ReplyRegex over PCRE2 (libpcre2-8); see reply_regex.h.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "lib/smtp/reply_regex.h"

#include <pcre2.h>

namespace dotgate::smtp {

struct ReplyRegex::Code {
  pcre2_code* code = nullptr;
  pcre2_match_context* context = nullptr;
  ~Code() {
    pcre2_match_context_free(context);
    pcre2_code_free(code);
  }
};

std::optional<ReplyRegex> ReplyRegex::compile(std::string_view pattern, std::string* error) {
  if (pattern.size() > kMaxPattern) {
    if (error) *error = "longer than " + std::to_string(kMaxPattern) + " octets";
    return std::nullopt;
  }
  int code = 0;
  PCRE2_SIZE offset = 0;
  // PCRE2_NEVER_UTF: a (*UTF) in the pattern would make invalid UTF-8 from the MTA a match error.
  pcre2_code* compiled = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                       PCRE2_NEVER_UTF, &code, &offset, nullptr);
  if (!compiled) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(code, message, sizeof message);
    if (error) *error = std::string(reinterpret_cast<const char*>(message)) + " at offset " + std::to_string(offset);
    return std::nullopt;
  }
  auto owned = std::make_shared<Code>();
  owned->code = compiled;
  owned->context = pcre2_match_context_create(nullptr);
  if (!owned->context) {
    if (error) *error = "out of memory";
    return std::nullopt;
  }
  pcre2_set_match_limit(owned->context, kMatchLimit);
  pcre2_set_depth_limit(owned->context, kDepthLimit);
  std::uint32_t groups = 0;
  pcre2_pattern_info(compiled, PCRE2_INFO_CAPTURECOUNT, &groups);
  ReplyRegex r;
  r.code_ = std::move(owned);
  r.groups_ = groups;
  return r;
}

bool ReplyRegex::search(std::string_view text, std::vector<std::string_view>& out) const {
  out.clear();
  pcre2_match_data* data = pcre2_match_data_create_from_pattern(code_->code, nullptr);
  if (!data) return false;
  int rc = pcre2_match(code_->code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0, 0, data,
                       code_->context);
  if (rc > 0) {
    PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data);
    for (std::size_t i = 0; i <= groups_; ++i) {
      PCRE2_SIZE start = ovector[2 * i], end = ovector[2 * i + 1];
      // Unset groups are PCRE2_UNSET; \K can put the start after the end: both read as empty.
      if (i >= static_cast<std::size_t>(rc) || start == PCRE2_UNSET || end < start) out.emplace_back();
      else out.push_back(text.substr(start, end - start));
    }
  }
  pcre2_match_data_free(data);
  return rc > 0;
}

}  // namespace dotgate::smtp
