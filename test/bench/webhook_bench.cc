// test/bench/webhook_bench.cc — the HTTP verdict round trip over loopback keep-alive (issue 4).
//
// Built and run by test/bench/webhook.sh (release flags, against test/bench/webhook_server);
// not a test. It sends N requests (default 20,000) one after the other, each after the previous
// answer, on one keep-alive connection, a message of --size bytes (default 4 KiB) as the body, and
// times each from the call to its answer with uv_hrtime; the first W (default 1,000, at most a
// tenth of N) warm the connection, caches and allocator and are not counted. Three ways, one
// after the other, each on its own connection:
//   socket   a blocking socket writing the same request bytes and reading the answer: the floor
//            (loopback, kernel, the server), what no client can beat;
//   client   dotgate's http::Client: post() (with the webhook's headers) to its callback;
//   policy   the `http` policy: HttpPolicy::data_end to `done`, the whole verdict path (the spool
//            read, unstuffing, the X-Dotgate-* headers, the POST, the JSON answer to a Verdict).
// For each it prints the median, p90, p99 and mean in µs, requests/s, and the process CPU time per
// request (on a loaded machine the wall clock also counts the time others had the core; the CPU
// time does not). Target: the client's median under 200 µs.
// Every request must be answered 200 (accept); any other answer is counted and fails the run.
// The loop must close cleanly at the end (every Client handle closed), or the bench says so.
//
//   webhook_bench --url http://127.0.0.1:PORT/verdict [--requests N] [--warmup W] [--size BYTES]
//                 [--skip socket,client,policy]
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <uv.h>

#include "lib/http/client.h"
#include "lib/smtp/data_stream.h"
#include "lib/spool/spool.h"
#include "policies/client_registry.h"
#include "policies/http.h"

using namespace dotgate;

namespace {

constexpr std::uint64_t kTimeoutMs = 10'000;

double process_cpu_us() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

// A plain-text message of about `size` bytes, CRLF, in wire form (dot-stuffed), as the spool holds it.
std::string make_wire_message(std::size_t size) {
  std::string m =
      "From: Bench Sender <sender@bench.example>\r\nTo: <rcpt@bench.example>\r\n"
      "Subject: webhook round trip\r\nDate: Mon, 23 Nov 2026 00:00:00 +0000\r\n"
      "Message-ID: <webhook-bench@bench.example>\r\nMIME-Version: 1.0\r\n"
      "Content-Type: text/plain; charset=us-ascii\r\n\r\n";
  static const char* kLine = "The quick brown fox jumps over the lazy dog, and a dot line follows now.";
  for (int n = 0; m.size() < size; ++n) m += (n % 10 == 9) ? "..\r\n" : std::string(kLine) + "\r\n";
  return m;
}

struct Result {
  const char* name;
  std::vector<double> us{};  // counted requests only
  double cpu_us = 0;       // process CPU over the counted requests
  double wall_us = 0;      // wall clock over the counted requests
  std::uint64_t failures = 0;
  std::string first_failure{};
  std::uint64_t connections = 0;
  bool clean_close = true;
  bool ran = false;
};

// Runs `total` requests in sequence through start(i, finished), where finished(ok, why) must be
// called once per request from the loop; times each from start to finished.
struct Sequence {
  std::size_t total, warmup;
  Result* result;
  std::uint64_t t0 = 0, phase_wall = 0;
  double phase_cpu = 0;
  std::size_t i = 0;
  std::function<void(std::size_t)> start{};
  std::function<void()> done{};  // after the last answer

  void next() {
    if (i == warmup) phase_wall = uv_hrtime(), phase_cpu = process_cpu_us();
    if (i == total) {
      result->wall_us = (uv_hrtime() - phase_wall) / 1e3;
      result->cpu_us = process_cpu_us() - phase_cpu;
      if (done) done();
      return;
    }
    t0 = uv_hrtime();
    start(i);
  }
  void finished(bool ok, const std::string& why) {
    std::uint64_t t1 = uv_hrtime();
    if (!ok && result->failures++ == 0) result->first_failure = why;
    if (i >= warmup) result->us.push_back((t1 - t0) / 1e3);
    ++i;
    next();
  }
};

http::Client::Headers webhook_headers(std::size_t body_size) {
  return {{"Content-Type", "message/rfc822"},
          {"X-Dotgate-Client-Address", "127.0.0.1:40000"},
          {"X-Dotgate-Helo", "bench.example"},
          {"X-Dotgate-Sender", "<sender@bench.example>"},
          {"X-Dotgate-Recipient", "<rcpt@bench.example>"},
          {"X-Dotgate-Size", std::to_string(body_size)},
          {"X-Dotgate-Queue-Id", "BENCH0000001"}};
}

// The floor: the same bytes http::Client would send, over a blocking socket.
void run_socket(const http::Url& url, const std::string& body, std::size_t total, std::size_t warmup, Result& r) {
  std::string wire = "POST " + url.path + " HTTP/1.1\r\nHost: " + url.host_header + "\r\n";
  for (const auto& [name, value] : webhook_headers(body.size())) wire += name + ": " + value + "\r\n";
  wire += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  uv_ip4_addr(url.host.c_str(), url.port, &sa);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    r.failures = total, r.first_failure = "connect failed";
    close(fd);
    return;
  }
  r.connections = 1;
  std::string in;
  char buf[16 * 1024];
  std::uint64_t phase_wall = 0;
  double phase_cpu = 0;
  for (std::size_t i = 0; i < total; ++i) {
    if (i == warmup) phase_wall = uv_hrtime(), phase_cpu = process_cpu_us();
    std::uint64_t t0 = uv_hrtime();
    std::string why;
    if (write(fd, wire.data(), wire.size()) != static_cast<ssize_t>(wire.size())) why = "write failed";
    in.clear();
    while (why.empty()) {  // until the head and Content-Length bytes of body are in
      auto end = in.find("\r\n\r\n");
      if (end != std::string::npos) {
        auto cl = in.find("Content-Length: ");
        std::size_t want = end + 4 + (cl < end ? std::strtoul(in.c_str() + cl + 16, nullptr, 10) : 0);
        if (in.size() >= want) break;
      }
      ssize_t n = read(fd, buf, sizeof buf);
      if (n <= 0) why = "connection closed";
      else in.append(buf, static_cast<std::size_t>(n));
    }
    if (why.empty() && in.compare(0, 12, "HTTP/1.1 200") != 0) why = in.substr(0, in.find('\r'));
    std::uint64_t t1 = uv_hrtime();
    if (i >= warmup) r.us.push_back((t1 - t0) / 1e3);
    if (!why.empty() && r.failures++ == 0) r.first_failure = why;
    if (why == "write failed" || why == "connection closed") break;
  }
  r.wall_us = (uv_hrtime() - phase_wall) / 1e3;
  r.cpu_us = process_cpu_us() - phase_cpu;
  close(fd);
}

bool close_loop(uv_loop_t* loop) {
  uv_run(loop, UV_RUN_DEFAULT);  // the Client frees itself after its last close callback
  return uv_loop_close(loop) == 0;
}

void run_client(const http::Url& url, const std::string& body, std::size_t total, std::size_t warmup, Result& r) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  auto* client = new http::Client(&loop, url, 1);  // frees itself after the last release()
  client->retain();
  const http::Client::Headers headers = webhook_headers(body.size());
  Sequence seq{total, warmup, &r};
  seq.start = [&](std::size_t) {
    client->post(headers, body, kTimeoutMs, [&](http::ClientResult res) {
      bool ok = res.ok() && res.status == 200;
      seq.finished(ok, res.ok() ? "status " + std::to_string(res.status) : res.error);
    });
  };
  seq.done = [&] { uv_stop(&loop); };  // the idle keep-alive connection would keep the loop running
  seq.next();
  uv_run(&loop, UV_RUN_DEFAULT);
  r.connections = client->connections_opened();
  client->release();
  r.clean_close = close_loop(&loop);
}

void run_policy(const http::Url& url, const std::string& wire, std::size_t total, std::size_t warmup, Result& r) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  auto config = std::make_shared<policy::HttpPolicyConfig>();
  config->url = url;
  config->url_text = "http://" + url.host_header + url.path;
  config->timeout_ms = kTimeoutMs;
  config->max_connections = 1;
  // No linger: the loop must end when the policy lets its Client go.
  auto registry = std::make_shared<policy::ClientRegistry>(url, 1, std::chrono::milliseconds(0));
  auto spool = std::make_shared<spool::Spool>(std::size_t{1} << 20, "/tmp");  // stays in memory
  spool->append(wire);
  policy::Envelope envelope;
  envelope.client_address = "127.0.0.1:40000";
  envelope.helo = "bench.example";
  envelope.mail_from = "sender@bench.example";
  envelope.recipients = {"rcpt@bench.example"};
  envelope.message_size = wire.size();
  envelope.queue_id = "BENCH0000001";
  {
    policy::HttpPolicy http_policy(config, registry, &loop);
    Sequence seq{total, warmup, &r};
    seq.start = [&](std::size_t) {
      http_policy.data_end(envelope, spool, [&](policy::Verdict v) {
        seq.finished(v.passed() && v.error.empty(), v.reason);
      });
    };
    seq.done = [&] { uv_stop(&loop); };
    seq.next();
    uv_run(&loop, UV_RUN_DEFAULT);
    // One connection, the same as the client's: the registry's Client for this loop.
    http::Client* c = registry->acquire(&loop);
    r.connections = c->connections_opened();
    registry->release(&loop);
  }  // the policy releases the registry's Client: it closes its connection
  r.clean_close = close_loop(&loop);
}

struct Stats {
  double median = 0, p90 = 0, p99 = 0, mean = 0;
};
Stats stats(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[std::min(v.size() - 1, static_cast<std::size_t>(q * v.size()))]; };
  s.median = at(0.5), s.p90 = at(0.9), s.p99 = at(0.99);
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / v.size();
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  std::string url_text = "http://127.0.0.1:8080/verdict", skip;
  std::size_t requests = 20000, size = 4096;
  long warmup_arg = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--url") url_text = argv[i + 1];
    else if (a == "--requests") requests = std::strtoul(argv[i + 1], nullptr, 10);
    else if (a == "--warmup") warmup_arg = std::atol(argv[i + 1]);
    else if (a == "--size") size = std::strtoul(argv[i + 1], nullptr, 10);
    else if (a == "--skip") skip = argv[i + 1];
    else {
      std::fprintf(stderr, "webhook_bench: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  http::Url url;
  std::string why = http::parse_url(url_text, url);
  if (!why.empty() || requests == 0) {
    std::fprintf(stderr, "webhook_bench: bad --url (%s) or --requests\n", why.c_str());
    return 2;
  }
  std::size_t warmup = warmup_arg >= 0 ? static_cast<std::size_t>(warmup_arg) : std::min<std::size_t>(1000, requests / 10);
  std::size_t total = requests + warmup;
  std::string wire = make_wire_message(size);
  std::string body = smtp::unstuff(wire);  // what the policy sends: the bytes the MTA would queue

  Result results[] = {{"socket (blocking; the floor)"}, {"client (http::Client post)"}, {"policy (HttpPolicy::data_end)"}};
  if (skip.find("socket") == std::string::npos) results[0].ran = true, run_socket(url, body, total, warmup, results[0]);
  if (skip.find("client") == std::string::npos) results[1].ran = true, run_client(url, body, total, warmup, results[1]);
  if (skip.find("policy") == std::string::npos) results[2].ran = true, run_policy(url, wire, total, warmup, results[2]);

  std::printf("%s, body %zu bytes (message %zu on the wire), %zu requests in sequence + %zu warm-up, one keep-alive "
              "connection each\n", url_text.c_str(), body.size(), wire.size(), requests, warmup);
  std::printf("  %-31s %8s %8s %8s %8s %9s %11s %5s\n", "µs per round trip", "median", "p90", "p99", "mean", "req/s",
              "cpu µs/req", "conns");
  int rc = 0;
  for (const Result& r : results) {
    if (!r.ran) continue;
    Stats s = stats(r.us);
    double rate = r.wall_us > 0 ? r.us.size() * 1e6 / r.wall_us : 0;
    double cpu = r.us.empty() ? 0 : r.cpu_us / r.us.size();
    std::printf("  %-30s %8.1f %8.1f %8.1f %8.1f %9.0f %10.1f %5llu\n", r.name, s.median, s.p90, s.p99, s.mean, rate,
                cpu, static_cast<unsigned long long>(r.connections));
    if (r.failures > 0) {
      std::printf("    %llu requests failed (first: %s)\n", static_cast<unsigned long long>(r.failures),
                  r.first_failure.c_str());
      rc = 1;
    }
    if (!r.clean_close) {
      std::printf("    the loop did not close cleanly: a handle was left open\n");
      rc = 1;
    }
  }
  if (results[1].ran) {
    double median = stats(results[1].us).median;
    std::printf("target < 200 µs median (http::Client, %.1f µs): %s\n", median,
                median < 200 && results[1].failures == 0 ? "met" : "NOT met");
  }
  return rc;
}
