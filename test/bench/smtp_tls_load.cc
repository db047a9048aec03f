// test/bench/smtp_tls_load.cc — an SMTP load generator that speaks plain text, STARTTLS and
// implicit TLS through one code path, so that the ratios test/bench/tls_relay.sh prints compare
// TLS with its absence and nothing else (Postfix's smtp-source, which relay.sh uses, has no TLS).
//
// Built and run by test/bench/tls_relay.sh (c++ -O2, OpenSSL); not a test. Each of --sessions
// threads runs sessions one after the other on a blocking socket until --count sessions have
// started in all. One session, as a fresh MX client sends one message:
//   connect; [implicit: TLS handshake]; read the greeting (220); EHLO (250);
//   [starttls: STARTTLS (220), TLS handshake, EHLO again (250)];
//   MAIL FROM (250), RCPT TO (250), DATA (354), a --size-byte message and the dot (250); QUIT (221);
//   [TLS: close_notify]; close.
// No pipelining (one command per round trip, as smtp-source). With --no-mail a session stops after
// the greeting (implicit, plain) or after STARTTLS and its handshake, and says QUIT: what is timed
// is then connections, or TLS handshakes, per second. The TLS client does not check the
// certificate (the bench's is self-signed; most MX clients do not either) and, unless
// --reuse-session, resumes nothing: every connection pays a full handshake, as a client that has
// never seen this server does. With --reuse-session each thread offers the session (ticket) of
// its previous connection.
//
// A session counts as ok only when every reply above had the expected code; anything else (a
// refused connect, a timeout, a failed handshake, another code) is an error, counted by the step
// it failed at, and the first few are printed on stderr. Output, one line on stdout:
//   ok=N errors=E resumed=R secs=S rate=N/S p50_ms=.. p99_ms=.. self_cpu_ms=.. tls=PROTO/CIPHER/GROUP
// (self_cpu_ms: this process's user+system time, the client side's share of the machine; tls:
// what the first TLS session negotiated, or none).
// Exit status 0 when every session was ok, 1 otherwise, 2 on bad arguments.
//
// --idle N instead opens N sessions (greeting, EHLO, [STARTTLS, handshake, EHLO]), prints
// `ready OPENED OK` on stdout and keeps them all open, idle, until its stdin is closed or --hold
// seconds pass; then closes them. For the memory an idle (TLS) session holds in the proxy.
//
//   smtp_tls_load --port P [--host 127.0.0.1] [--mode plain|starttls|implicit] [--count N]
//                 [--sessions T] [--size BYTES] [--no-mail] [--reuse-session] [--tls-version 1.2|1.3]
//                 [--timeout SECS] [--idle N [--hold SECS]]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

enum class Mode { plain, starttls, implicit };

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  Mode mode = Mode::plain;
  long count = 1000;
  int sessions = 20;
  std::size_t size = 4096;
  bool no_mail = false;
  bool reuse_session = false;
  int tls_version = 0;  // 0: OpenSSL's default range (1.2 to 1.3); 12 or 13: that version only
  int timeout_s = 10;
  long idle = 0;
  int hold_s = 180;
};

// One connection: the socket, the TLS object once TLS is on, and what was read but not yet parsed.
struct Conn {
  int fd = -1;
  SSL* ssl = nullptr;
  std::string in;

  Conn() = default;
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  Conn(Conn&& o) noexcept : fd(o.fd), ssl(o.ssl), in(std::move(o.in)) { o.fd = -1; o.ssl = nullptr; }
  ~Conn() { close_now(); }

  void close_now() {
    if (ssl) {
      SSL_shutdown(ssl);  // our close_notify; we do not wait for the peer's
      SSL_free(ssl);
      ssl = nullptr;
    }
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

// What one thread found; summed by main after the join.
struct Tally {
  long ok = 0;
  long resumed = 0;
  std::map<std::string, long> errors;  // by the step that failed
  std::vector<double> ok_ms;           // each ok session's duration
  std::string tls;                     // the first TLS session's protocol/cipher/group
};

std::string tls_facts(SSL* ssl) {
  int group = SSL_get_negotiated_group(ssl);
  const char* name = group ? OBJ_nid2sn(group & ~TLSEXT_nid_unknown) : nullptr;
  return std::string(SSL_get_version(ssl)) + "/" + SSL_get_cipher_name(ssl) + "/" + (name ? name : "-");
}

std::mutex print_mutex;
std::atomic<int> printed_errors{0};

void note_error(Tally& t, const std::string& step, const std::string& detail) {
  ++t.errors[step];
  if (printed_errors.fetch_add(1) < 5) {
    std::lock_guard<std::mutex> lock(print_mutex);
    std::fprintf(stderr, "smtp_tls_load: %s: %s\n", step.c_str(), detail.c_str());
  }
}

// Why a socket call failed; a timeout (SO_RCVTIMEO, SO_SNDTIMEO) says so by name.
std::string errno_text(int e) {
  if (e == EAGAIN || e == EWOULDBLOCK) return "timed out";
  return std::strerror(e);
}

// Why an SSL_* call that returned `ret` failed.
std::string ssl_error_text(SSL* ssl, int ret) {
  int saved = errno;
  int kind = SSL_get_error(ssl, ret);
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (kind == SSL_ERROR_ZERO_RETURN) return "closed by the server (close_notify)";
  if (kind == SSL_ERROR_SYSCALL && e == 0) return ret == 0 || saved == 0 ? "closed by the server" : errno_text(saved);
  if (e == 0) return "SSL error " + std::to_string(kind);
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

bool connect_to(const Options& o, Conn& c, std::string& err) {
  c.fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (c.fd < 0) { err = errno_text(errno); return false; }
  // The time limit of every blocking step: connect, each read and each write.
  timeval tv{o.timeout_s, 0};
  setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(o.port));
  inet_pton(AF_INET, o.host.c_str(), &a.sin_addr);
  if (::connect(c.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) { err = errno_text(errno); return false; }
  return true;
}

bool send_all(Conn& c, std::string_view s, std::string& err) {
  while (!s.empty()) {
    long n;
    if (c.ssl) {
      n = SSL_write(c.ssl, s.data(), static_cast<int>(s.size()));
      if (n <= 0) { err = "SSL_write: " + ssl_error_text(c.ssl, static_cast<int>(n)); return false; }
    } else {
      n = ::send(c.fd, s.data(), s.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) { err = "send: " + errno_text(errno); return false; }
    }
    s.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// Reads one reply (its last line is "ddd " or "ddd"); returns its code, or -1 (err says why).
// A reply is capped at 64 KiB: a peer that never ends its line does not grow us without bound.
int read_reply(Conn& c, std::string& err) {
  for (;;) {
    std::size_t start = 0;
    for (std::size_t eol; (eol = c.in.find("\r\n", start)) != std::string::npos; start = eol + 2) {
      std::string_view line(c.in.data() + start, eol - start);
      if (line.size() < 3) { err = "short reply line"; return -1; }
      if (line.size() == 3 || line[3] == ' ') {
        int code = std::atoi(std::string(line.substr(0, 3)).c_str());
        c.in.erase(0, eol + 2);
        return code;
      }
    }
    if (c.in.size() > 65536) { err = "reply over 64 KiB"; return -1; }
    char buf[4096];
    long n;
    if (c.ssl) {
      n = SSL_read(c.ssl, buf, sizeof buf);
      if (n <= 0) { err = "SSL_read: " + ssl_error_text(c.ssl, static_cast<int>(n)); return -1; }
    } else {
      n = ::recv(c.fd, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) { err = "recv: " + errno_text(errno); return -1; }
      if (n == 0) { err = "closed by the server"; return -1; }
    }
    c.in.append(buf, static_cast<std::size_t>(n));
  }
}

// One command and its reply, which must have code `want`.
bool exchange(Conn& c, std::string_view cmd, int want, std::string& err) {
  if (!cmd.empty() && !send_all(c, cmd, err)) return false;
  int code = read_reply(c, err);
  if (code < 0) return false;
  if (code != want) { err = "got " + std::to_string(code) + ", want " + std::to_string(want); return false; }
  return true;
}

bool start_tls(SSL_CTX* ctx, Conn& c, SSL_SESSION*& offer, std::string& err) {
  if (!c.in.empty()) { err = "bytes after the reply, before TLS"; return false; }  // RFC 3207
  c.ssl = SSL_new(ctx);
  SSL_set_fd(c.ssl, c.fd);
  if (offer) SSL_set_session(c.ssl, offer);
  int ret = SSL_connect(c.ssl);
  if (ret != 1) { err = "SSL_connect: " + ssl_error_text(c.ssl, ret); return false; }
  return true;
}

// Headers and 78-byte lines up to `size` bytes (within 2), then the dot. No line starts with a dot.
std::string make_message(std::size_t size) {
  std::string m = "From: sender@bench.example\r\nTo: rcpt@bench.example\r\nSubject: bench\r\n\r\n";
  const std::string line = std::string(76, 'x') + "\r\n";
  while (m.size() + line.size() <= size) m += line;
  if (size >= m.size() + 3) m += std::string(size - m.size() - 2, 'y') + "\r\n";
  return m + ".\r\n";
}

// The opening every mode shares: connect, [implicit TLS], greeting, EHLO, [STARTTLS, TLS, EHLO].
// On false, `step` names what failed.
bool open_session(const Options& o, SSL_CTX* ctx, Conn& c, SSL_SESSION*& offer, std::string& step,
                  std::string& err) {
  step = "connect";
  if (!connect_to(o, c, err)) return false;
  if (o.mode == Mode::implicit) {
    step = "handshake";
    if (!start_tls(ctx, c, offer, err)) return false;
  }
  step = "greeting";
  if (!exchange(c, "", 220, err)) return false;
  if (o.no_mail && o.mode != Mode::starttls) return true;
  step = "ehlo";
  if (!exchange(c, "EHLO load.bench.example\r\n", 250, err)) return false;
  if (o.mode == Mode::starttls) {
    step = "starttls";
    if (!exchange(c, "STARTTLS\r\n", 220, err)) return false;
    step = "handshake";
    if (!start_tls(ctx, c, offer, err)) return false;
    if (o.no_mail) return true;
    step = "ehlo after tls";
    if (!exchange(c, "EHLO load.bench.example\r\n", 250, err)) return false;
  }
  return true;
}

void run_sessions(const Options& o, SSL_CTX* ctx, const std::string& message, std::atomic<long>& next, Tally& t) {
  SSL_SESSION* offer = nullptr;  // --reuse-session: the previous connection's session
  std::string step, err;
  while (next.fetch_add(1) < o.count) {
    auto t0 = Clock::now();
    Conn c;
    bool ok = open_session(o, ctx, c, offer, step, err);
    // The transaction, then QUIT: each step one command and the one reply code that is right.
    const struct { const char* name; std::string_view command; int want; bool mail; } steps[] = {
        {"mail", "MAIL FROM:<sender@bench.example>\r\n", 250, true},
        {"rcpt", "RCPT TO:<rcpt@bench.example>\r\n", 250, true},
        {"data", "DATA\r\n", 354, true},
        {"dot", message, 250, true},
        {"quit", "QUIT\r\n", 221, false},
    };
    for (const auto& s : steps) {
      if (!ok) break;
      if (s.mail && o.no_mail) continue;
      step = s.name;
      ok = exchange(c, s.command, s.want, err);
    }
    if (ok) {
      if (c.ssl && SSL_session_reused(c.ssl)) ++t.resumed;
      if (c.ssl && t.tls.empty()) t.tls = tls_facts(c.ssl);
      if (o.reuse_session && c.ssl) {
        if (offer) SSL_SESSION_free(offer);
        offer = SSL_get1_session(c.ssl);  // under TLS 1.3, the ticket read with the replies
      }
      ++t.ok;
      t.ok_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    } else {
      note_error(t, step, err);
    }
  }
  if (offer) SSL_SESSION_free(offer);
}

// --idle: open `share` sessions and hand them to `keep`.
void open_idle(const Options& o, SSL_CTX* ctx, long share, std::vector<Conn>& keep, Tally& t) {
  SSL_SESSION* offer = nullptr;
  std::string step, err;
  for (long i = 0; i < share; ++i) {
    Conn c;
    if (open_session(o, ctx, c, offer, step, err)) {
      ++t.ok;
      keep.push_back(std::move(c));
    } else {
      note_error(t, step, err);
    }
  }
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::size_t i = std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(i), v.end());
  return v[i];
}

double self_cpu_ms() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return (static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3) +
         (static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3);
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr, "smtp_tls_load: %s\nusage: smtp_tls_load --port P [--host A] [--mode plain|starttls|implicit] "
                       "[--count N] [--sessions T] [--size BYTES] [--no-mail] [--reuse-session] "
                       "[--tls-version 1.2|1.3] [--timeout SECS] [--idle N [--hold SECS]]\n", why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value after " + a).c_str());
      return argv[++i];
    };
    if (a == "--host") o.host = value();
    else if (a == "--port") o.port = std::atoi(value().c_str());
    else if (a == "--mode") {
      std::string m = value();
      if (m == "plain") o.mode = Mode::plain;
      else if (m == "starttls") o.mode = Mode::starttls;
      else if (m == "implicit") o.mode = Mode::implicit;
      else usage("--mode is plain, starttls or implicit");
    } else if (a == "--count") o.count = std::atol(value().c_str());
    else if (a == "--sessions") o.sessions = std::atoi(value().c_str());
    else if (a == "--size") o.size = static_cast<std::size_t>(std::atol(value().c_str()));
    else if (a == "--no-mail") o.no_mail = true;
    else if (a == "--reuse-session") o.reuse_session = true;
    else if (a == "--tls-version") {
      std::string v = value();
      if (v == "1.2") o.tls_version = 12;
      else if (v == "1.3") o.tls_version = 13;
      else usage("--tls-version is 1.2 or 1.3");
    } else if (a == "--timeout") o.timeout_s = std::atoi(value().c_str());
    else if (a == "--idle") o.idle = std::atol(value().c_str());
    else if (a == "--hold") o.hold_s = std::atoi(value().c_str());
    else usage(("unknown argument " + a).c_str());
  }
  if (o.port <= 0 || o.port > 65535) usage("--port is required");
  if (o.sessions < 1 || o.count < 0 || o.timeout_s < 1 || o.idle < 0) usage("bad number");
  return o;
}

SSL_CTX* client_context(const Options& o) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) usage("SSL_CTX_new failed");
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (o.tls_version == 12) SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
  if (o.tls_version == 13) SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  // Sessions are kept by hand (one per thread, --reuse-session), never in the context's cache.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  return ctx;
}

// Waits until stdin is closed (the caller has measured) or `hold_s` seconds pass.
void hold_until_stdin_closes(int hold_s) {
  auto end = Clock::now() + std::chrono::seconds(hold_s);
  while (Clock::now() < end) {
    pollfd p{0, POLLIN, 0};
    if (poll(&p, 1, 500) > 0) {
      char buf[256];
      if (::read(0, buf, sizeof buf) <= 0) return;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  SSL_CTX* ctx = client_context(o);
  std::vector<Tally> tallies(static_cast<std::size_t>(o.sessions));
  std::vector<std::thread> threads;
  double cpu0 = self_cpu_ms();
  auto t0 = Clock::now();

  if (o.idle > 0) {
    std::vector<std::vector<Conn>> keep(static_cast<std::size_t>(o.sessions));
    for (int i = 0; i < o.sessions; ++i) {
      long share = o.idle / o.sessions + (i < o.idle % o.sessions ? 1 : 0);
      threads.emplace_back(open_idle, std::cref(o), ctx, share, std::ref(keep[static_cast<std::size_t>(i)]),
                           std::ref(tallies[static_cast<std::size_t>(i)]));
    }
    for (auto& th : threads) th.join();
    long ok = 0;
    for (auto& t : tallies) ok += t.ok;
    std::printf("ready %ld %ld\n", o.idle, ok);
    std::fflush(stdout);
    hold_until_stdin_closes(o.hold_s);
    keep.clear();  // every session closed here
    SSL_CTX_free(ctx);
    return ok == o.idle ? 0 : 1;
  }

  std::atomic<long> next{0};
  const std::string message = make_message(o.size);
  for (int i = 0; i < o.sessions; ++i)
    threads.emplace_back(run_sessions, std::cref(o), ctx, std::cref(message), std::ref(next),
                         std::ref(tallies[static_cast<std::size_t>(i)]));
  for (auto& th : threads) th.join();
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  double cpu = self_cpu_ms() - cpu0;

  long ok = 0, resumed = 0, errors = 0;
  std::string tls = "none";
  std::vector<double> ms;
  std::map<std::string, long> by_step;
  for (auto& t : tallies) {
    ok += t.ok;
    resumed += t.resumed;
    if (!t.tls.empty()) tls = t.tls;
    ms.insert(ms.end(), t.ok_ms.begin(), t.ok_ms.end());
    for (auto& [step, n] : t.errors) { by_step[step] += n; errors += n; }
  }
  for (auto& [step, n] : by_step) std::fprintf(stderr, "smtp_tls_load: %ld errors at %s\n", n, step.c_str());
  std::printf("ok=%ld errors=%ld resumed=%ld secs=%.6f rate=%.1f p50_ms=%.3f p99_ms=%.3f self_cpu_ms=%.1f tls=%s\n",
              ok, errors, resumed, secs, static_cast<double>(ok) / secs, percentile(ms, 0.5), percentile(ms, 0.99), cpu,
              tls.c_str());
  SSL_CTX_free(ctx);
  return errors == 0 && ok == o.count ? 0 : 1;
}
