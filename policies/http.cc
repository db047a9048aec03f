// policies/http.cc — see http.h. Why on_error defaults to tempfail (fail-closed, 451): a verdict
// service that is down must not let everything through (fail-open is a choice an admin makes with
// "on_error": "accept"), and a 4xx keeps the message with the sender, who retries; nothing is lost.
#include "policies/http.h"

#include <chrono>

#include <nlohmann/json.hpp>

#include "lib/log/log.h"
#include "lib/smtp/data_stream.h"
#include "lib/spool/spool.h"
#include "policies/client_registry.h"
#include "policies/registry.h"

namespace dotgate::policy {

namespace {

class HttpFactory final : public PolicyFactory {
 public:
  explicit HttpFactory(std::shared_ptr<const HttpPolicyConfig> config)
      : config_(config), registry_(std::make_shared<ClientRegistry>(config->url, config->max_connections)) {}
  std::unique_ptr<Policy> create(const PolicyContext& context) const override {
    return std::make_unique<HttpPolicy>(config_, registry_, context.loop);
  }

 private:
  std::shared_ptr<const HttpPolicyConfig> config_;
  std::shared_ptr<ClientRegistry> registry_;
};

// Header values come from the client (HELO, addresses): a CR or LF would let it add headers of
// its own to our request (header injection); other controls have no business there either.
std::string header_safe(std::string_view v) {
  std::string out(v);
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return out;
}

bool valid_enhanced(const std::string& e, int code_class) {
  // RFC 3463: class.subject.detail, class 2/4/5 = the reply code's first digit, 1-3 digits each.
  if (e.size() < 5 || e[0] - '0' != code_class || e[1] != '.') return false;
  std::size_t i = 2, digits = 0, dots = 0;
  for (; i < e.size(); ++i) {
    if (e[i] == '.') {
      if (digits == 0 || ++dots > 1) return false;
      digits = 0;
    } else if (e[i] >= '0' && e[i] <= '9') {
      if (++digits > 3) return false;
    } else {
      return false;
    }
  }
  return dots == 1 && digits > 0;
}

}  // namespace

ResponseVerdict verdict_from_response(int status, std::string_view body) {
  ResponseVerdict r;
  if (status < 200 || status > 299) {
    r.error = "status " + std::to_string(status);
    return r;
  }
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded()) {
    r.error = "not JSON";
    return r;
  }
  if (!j.is_object()) {
    r.error = "not a JSON object";
    return r;
  }
  auto action_it = j.find("action");
  if (action_it == j.end() || !action_it->is_string()) {
    r.error = "no \"action\" string";
    return r;
  }
  std::string action = action_it->get<std::string>();
  auto code_it = j.find("code");
  auto enh_it = j.find("enhanced");
  auto msg_it = j.find("message");
  if (code_it != j.end() && !(code_it->is_number_integer())) return r.error = "\"code\" is not an integer", r;
  if (enh_it != j.end() && !enh_it->is_string()) return r.error = "\"enhanced\" is not a string", r;
  if (msg_it != j.end() && !msg_it->is_string()) return r.error = "\"message\" is not a string", r;

  if (action == "accept") {
    if (code_it != j.end()) {
      auto code = code_it->get<std::int64_t>();
      if (code < 200 || code > 299) return r.error = "code " + std::to_string(code) + " does not match accept", r;
    }
    r.ok = true;
    r.verdict = Verdict::pass();
    return r;
  }
  const ActionDefaults* d = refusal_action(action);
  if (d == nullptr) return r.error = "unknown action \"" + header_safe(action.substr(0, 40)) + "\"", r;

  int code = d->code;
  int code_class = d->code / 100;
  if (code_it != j.end()) {
    auto c = code_it->get<std::int64_t>();
    // A tempfail must stay a 4xx and a reject a 5xx: a 2xx here would accept by accident, and a
    // 5xx "tempfail" would bounce a message the service meant to see again.
    if (c / 100 != code_class || !smtp::valid_reply_code(static_cast<int>(c)))
      return r.error = "code " + std::to_string(c) + " does not match " + action, r;
    code = static_cast<int>(c);
  }
  std::string enhanced(d->enhanced);
  if (enh_it != j.end()) {
    enhanced = enh_it->get<std::string>();
    if (!valid_enhanced(enhanced, code_class))
      return r.error = "enhanced code \"" + header_safe(enhanced.substr(0, 20)) + "\" does not match " + action, r;
  }
  std::string text(d->text);
  if (msg_it != j.end()) {
    text = msg_it->get<std::string>();
    // The text goes into an SMTP reply line: controls (CR LF above all) would let the service
    // write lines of its own; a reply line is at most 512 octets (RFC 5321 4.5.3.1.5).
    for (char& c : text)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
    if (text.size() > 400) text.resize(400);
    if (text.find_first_not_of(' ') == std::string::npos) text = std::string(d->text);
  }
  r.ok = true;
  r.verdict = Verdict{d->action, smtp::Reply::make(code, enhanced, text), "webhook: " + action};
  return r;
}

Verdict verdict_on_error(OnError on_error, const std::string& reason) {
  switch (on_error) {
    case OnError::Accept:
      return Verdict{Action::Pass, {}, "webhook error (accepted): " + reason};
    case OnError::Reject:
      return Verdict::fail(550, "5.7.1", "Message could not be checked", "webhook error: " + reason);
    case OnError::Tempfail:
      break;
  }
  return Verdict::fail(451, "4.7.0", "Message could not be checked, try again later", "webhook error: " + reason);
}

HttpPolicy::HttpPolicy(std::shared_ptr<const HttpPolicyConfig> config, std::shared_ptr<ClientRegistry> registry,
                       uv_loop_t* loop)
    : config_(std::move(config)), registry_(std::move(registry)), loop_(loop) {}

HttpPolicy::~HttpPolicy() {
  cancel();
  if (client_ != nullptr) registry_->release(loop_);
}

void HttpPolicy::cancel() {
  if (request_ != 0 && client_ != nullptr) client_->cancel(request_);
  request_ = 0;
}

void HttpPolicy::data_end(const Envelope& envelope, SpoolRef spool, Done done) {
  if (loop_ == nullptr) return done(verdict_on_error(config_->on_error, "no event loop"));
  // The pool is taken on first use, not at session start: a session that never sends a message
  // costs nothing; once taken, it is kept until the session ends (release in the destructor).
  if (client_ == nullptr) client_ = registry_->acquire(loop_);
  cancel();
  std::string body = smtp::unstuff(spool->read_all());
  http::Client::Headers headers;
  headers.emplace_back("Content-Type", "message/rfc822");
  headers.emplace_back("X-Dotgate-Client-Address", header_safe(envelope.client_address));
  headers.emplace_back("X-Dotgate-Helo", header_safe(envelope.helo));
  headers.emplace_back("X-Dotgate-Sender", "<" + header_safe(envelope.mail_from) + ">");
  for (const auto& r : envelope.recipients) headers.emplace_back("X-Dotgate-Recipient", "<" + header_safe(r) + ">");
  headers.emplace_back("X-Dotgate-Size", std::to_string(body.size()));
  if (!envelope.queue_id.empty()) headers.emplace_back("X-Dotgate-Queue-Id", envelope.queue_id);
  if (!envelope.profile.empty()) headers.emplace_back("X-Dotgate-Profile", header_safe(envelope.profile));
  auto started = std::chrono::steady_clock::now();
  std::string client_address = envelope.client_address;
  request_ = client_->post(headers, std::move(body), config_->timeout_ms,
                           [this, done = std::move(done), started, client_address](http::ClientResult result) {
    request_ = 0;
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
    std::string reason, label;
    Verdict verdict;
    if (!result.ok()) {
      reason = result.error;
      label = http::error_label(result.error);
    } else {
      ResponseVerdict rv = verdict_from_response(result.status, result.body);
      if (rv.ok) verdict = std::move(rv.verdict);
      else reason = rv.error;
      label = result.status / 100 != 2 ? "status" : "malformed";
    }
    if (!reason.empty()) {
      log::warn("http policy: verdict service failed", {{"client", client_address}, {"url", config_->url_text},
                                                        {"reason", reason}, {"ms", ms}});
      verdict = verdict_on_error(config_->on_error, reason);
      verdict.error = label;
    }
    done(std::move(verdict));
  });
}

std::unique_ptr<PolicyFactory> make_http_factory(PolicyConfigReader& reader, const config::Config&) {
  auto c = std::make_shared<HttpPolicyConfig>();
  if (!reader.has("url")) throw config::ConfigError(reader.path() + ".url: missing required key");
  c->url_text = reader.string("url", "");
  std::string why = http::parse_url(c->url_text, c->url);
  if (!why.empty()) throw config::ConfigError(reader.path() + ".url: " + why);
  c->timeout_ms = static_cast<std::uint64_t>(reader.number("timeout", 10, 0.001, 3600) * 1000.0);
  if (c->timeout_ms == 0) c->timeout_ms = 1;
  std::string on_error = reader.choice("on_error", "tempfail", {"tempfail", "accept", "reject"});
  c->on_error = on_error == "accept" ? OnError::Accept : on_error == "reject" ? OnError::Reject : OnError::Tempfail;
  c->max_connections = reader.unsigned_integer("max_connections", 8, 1, 1024);
  return std::make_unique<HttpFactory>(c);
}

}  // namespace dotgate::policy
