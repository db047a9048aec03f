// test/unit/http/admin_server_test.cc — lib/http/admin_server on its own loop, over loopback on
// an ephemeral port: the answers byte for byte, keep-alive and close, 400 on garbage, and that
// close() (or destruction) leaves nothing open: every test ends with uv_loop_close() == 0.
#include <doctest/doctest.h>

#include <functional>
#include <stdexcept>
#include <string>

#include "lib/http/admin_server.h"

using dotgate::http::AdminAnswer;
using dotgate::http::AdminHandlers;
using dotgate::http::AdminRoute;
using dotgate::http::AdminServer;

namespace {

// A loopback HTTP client: connects, writes `request`, collects everything until EOF.
struct Client {
  uv_tcp_t tcp{};
  uv_connect_t connect{};
  uv_write_t write{};
  std::string request;
  std::string received;
  bool eof = false;
  bool closed = false;
  int error = 0;

  void start(uv_loop_t* loop, int port, std::string text) {
    request = std::move(text);
    REQUIRE(uv_tcp_init(loop, &tcp) == 0);
    tcp.data = this;
    sockaddr_in addr{};
    REQUIRE(uv_ip4_addr("127.0.0.1", port, &addr) == 0);
    connect.data = this;
    REQUIRE(uv_tcp_connect(&connect, &tcp, reinterpret_cast<const sockaddr*>(&addr), on_connect) == 0);
  }
  void close() {
    if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&tcp)))
      uv_close(reinterpret_cast<uv_handle_t*>(&tcp), [](uv_handle_t* h) { static_cast<Client*>(h->data)->closed = true; });
  }

  static void on_connect(uv_connect_t* req, int status) {
    auto* c = static_cast<Client*>(req->data);
    if (status < 0) {
      c->error = status;
      c->close();
      return;
    }
    uv_buf_t buf = uv_buf_init(c->request.data(), static_cast<unsigned>(c->request.size()));
    if (!c->request.empty()) uv_write(&c->write, reinterpret_cast<uv_stream_t*>(&c->tcp), &buf, 1, nullptr);
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(&c->tcp),
        [](uv_handle_t*, std::size_t size, uv_buf_t* b) { *b = uv_buf_init(new char[size], static_cast<unsigned>(size)); },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t* b) {
          auto* c = static_cast<Client*>(s->data);
          if (n > 0) c->received.append(b->base, static_cast<std::size_t>(n));
          delete[] b->base;
          if (n < 0) {
            c->eof = n == UV_EOF;
            if (n != UV_EOF) c->error = static_cast<int>(n);
            c->close();
          }
        });
  }
};

// Runs the loop until `done` or 5 s (a hang fails the test instead of blocking it).
void run_until(uv_loop_t* loop, const std::function<bool()>& done) {
  bool timed_out = false;
  uv_timer_t guard;
  uv_timer_init(loop, &guard);
  guard.data = &timed_out;
  uv_timer_start(&guard, [](uv_timer_t* t) { *static_cast<bool*>(t->data) = true; }, 5000, 0);
  while (!done() && !timed_out) uv_run(loop, UV_RUN_ONCE);
  CHECK_FALSE(timed_out);
  uv_close(reinterpret_cast<uv_handle_t*>(&guard), nullptr);
  uv_run(loop, UV_RUN_NOWAIT);
}

std::string response(const std::string& status, const std::string& content_type, const std::string& body,
                     const std::string& extra = "", bool head = false) {
  return "HTTP/1.1 " + status + "\r\nContent-Type: " + content_type + "\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\nCache-Control: no-store\r\n" + extra + "\r\n" + (head ? "" : body);
}
const std::string kText = "text/plain; charset=utf-8";
const std::string kProm = "text/plain; version=0.0.4; charset=utf-8";

// A loop, a server on 127.0.0.1:<ephemeral>, and the checks every test ends with.
struct Fixture {
  uv_loop_t loop{};
  bool ready = true;
  std::function<std::string()> metrics = [] { return std::string("dotgate_up 1\n"); };
  bool flag = false;  // the owner's routes: GET /flag, POST /flag/on, POST /boom (throws)
  std::unique_ptr<AdminServer> server;
  int port = 0;

  Fixture() {
    REQUIRE(uv_loop_init(&loop) == 0);
    std::vector<AdminRoute> routes = {
        {"GET", "/flag", [this] { return AdminAnswer{200, flag ? "on\n" : "off\n"}; }},
        {"POST", "/flag/on", [this] { flag = true; return AdminAnswer{200, "on\n"}; }},
        {"POST", "/flag", [] { return AdminAnswer{409, "no\n"}; }},
        {"POST", "/boom", []() -> AdminAnswer { throw std::runtime_error("boom"); }},
    };
    server = std::make_unique<AdminServer>(
        &loop, AdminHandlers{[this] { return ready; }, [this] { return metrics(); }, std::move(routes)});
    REQUIRE(server->listen({"127.0.0.1", 0}) == 0);
    port = server->port();
    REQUIRE(port > 0);
  }

  std::string exchange(const std::string& request) {
    Client c;
    c.start(&loop, port, request);
    run_until(&loop, [&] { return c.closed; });
    CHECK(c.eof);
    CHECK(c.error == 0);
    return c.received;
  }

  // close(), then nothing may be left: the loop closes.
  void finish() {
    int closed = 0;
    server->close([&] { ++closed; });
    CHECK(closed == 0);  // delivered from the loop, never from inside close()
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(closed == 1);
    server.reset();
    CHECK(uv_loop_close(&loop) == 0);
  }
};

}  // namespace

TEST_CASE("admin server: answers pipelined requests in order, then Connection: close") {
  Fixture f;
  std::string got = f.exchange(
      "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
      "HEAD /healthz HTTP/1.1\r\n\r\n"
      "GET /readyz HTTP/1.1\r\n\r\n"
      "GET /nope HTTP/1.1\r\n\r\n"
      "POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"
      "HEAD /metrics HTTP/1.1\r\n\r\n"
      "GET /metrics?name[]=x HTTP/1.1\r\nConnection: close\r\n\r\n"
      "GET /healthz HTTP/1.1\r\n\r\n");  // after close: ignored
  std::string want = response("200 OK", kText, "ok\n") + response("200 OK", kText, "ok\n", "", true) +
                     response("200 OK", kText, "ready\n") + response("404 Not Found", kText, "not found\n") +
                     response("405 Method Not Allowed", kText, "method not allowed\n", "Allow: GET, HEAD\r\n") +
                     response("200 OK", kProm, "dotgate_up 1\n", "", true) +
                     response("200 OK", kProm, "dotgate_up 1\n", "Connection: close\r\n");
  CHECK(got == want);
  f.finish();
}

TEST_CASE("admin server: the owner's routes: GET/HEAD, POST, 405 with Allow, 409, a throwing handler") {
  Fixture f;
  std::string got = f.exchange(
      "GET /flag HTTP/1.1\r\n\r\n"
      "GET /flag/on HTTP/1.1\r\n\r\n"  // a GET never changes anything
      "POST /flag/on HTTP/1.1\r\nContent-Length: 3\r\n\r\nyes"
      "HEAD /flag HTTP/1.1\r\n\r\n"
      "POST /flag HTTP/1.1\r\n\r\n"
      "DELETE /flag HTTP/1.1\r\n\r\n"
      "POST /boom HTTP/1.1\r\n\r\n"
      "GET /flag?x=1 HTTP/1.1\r\nConnection: close\r\n\r\n");
  std::string want = response("200 OK", kText, "off\n") +
                     response("405 Method Not Allowed", kText, "method not allowed\n", "Allow: POST\r\n") +
                     response("200 OK", kText, "on\n") + response("200 OK", kText, "on\n", "", true) +
                     response("409 Conflict", kText, "no\n") +
                     response("405 Method Not Allowed", kText, "method not allowed\n", "Allow: GET, HEAD, POST\r\n") +
                     response("500 Internal Server Error", kText, "internal error\n") +
                     response("200 OK", kText, "on\n", "Connection: close\r\n");
  CHECK(got == want);
  CHECK(f.flag);
  f.finish();
}

TEST_CASE("admin server: readiness follows the handler") {
  Fixture f;
  f.ready = false;
  CHECK(f.exchange("GET /readyz HTTP/1.1\r\nConnection: close\r\n\r\n") ==
        response("503 Service Unavailable", kText, "not ready\n", "Connection: close\r\n"));
  f.ready = true;
  CHECK(f.exchange("GET /readyz HTTP/1.0\r\n\r\n") == response("200 OK", kText, "ready\n", "Connection: close\r\n"));
  f.finish();
}

TEST_CASE("admin server: malformed request gets 400 and the connection closes") {
  Fixture f;
  CHECK(f.exchange("GET /healthz HTTP/1.1\r\n\r\nBLAH / HTTP/1.1\r\n\r\n") ==
        response("200 OK", kText, "ok\n") + response("400 Bad Request", kText, "bad request\n", "Connection: close\r\n"));
  CHECK(f.exchange("\x16\x03\x01\x00\x05hello") ==
        response("400 Bad Request", kText, "bad request\n", "Connection: close\r\n"));
  std::string huge = "GET / HTTP/1.1\r\nX: " + std::string(9000, 'a') + "\r\n\r\n";
  CHECK(f.exchange(huge) == response("400 Bad Request", kText, "bad request\n", "Connection: close\r\n"));
  f.finish();
}

TEST_CASE("admin server: HTTP/1.0 keep-alive is answered as such") {
  Fixture f;
  CHECK(f.exchange("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /healthz HTTP/1.0\r\n\r\n") ==
        response("200 OK", kText, "ok\n", "Connection: keep-alive\r\n") +
            response("200 OK", kText, "ok\n", "Connection: close\r\n"));
  f.finish();
}

TEST_CASE("admin server: a failing handler is a 500, not a crash") {
  Fixture f;
  f.metrics = []() -> std::string { throw std::runtime_error("boom"); };
  CHECK(f.exchange("GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n") ==
        response("500 Internal Server Error", kText, "internal error\n", "Connection: close\r\n"));
  f.finish();
}

TEST_CASE("admin server: close() ends idle keep-alive connections too") {
  Fixture f;
  Client a, b;
  a.start(&f.loop, f.port, "GET /healthz HTTP/1.1\r\n\r\n");
  b.start(&f.loop, f.port, "GET /heal");  // mid-request
  run_until(&f.loop, [&] { return a.received == response("200 OK", kText, "ok\n"); });
  CHECK_FALSE(a.closed);
  CHECK_FALSE(b.closed);

  int closed = 0;
  f.server->close([&] { ++closed; });
  uv_run(&f.loop, UV_RUN_DEFAULT);  // returns once the clients saw EOF and everything closed
  CHECK(closed == 1);
  CHECK(a.eof);
  CHECK(b.eof);
  CHECK(b.received.empty());
  f.server.reset();
  CHECK(uv_loop_close(&f.loop) == 0);
}

TEST_CASE("admin server: on_closed may destroy the server") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  auto server = std::make_unique<AdminServer>(&loop, AdminHandlers{});
  REQUIRE(server->listen({"127.0.0.1", 0}) == 0);
  bool called = false;
  server->close([&] {
    called = true;
    server.reset();
  });
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(called);
  CHECK(server == nullptr);
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("admin server: destroyed without close(), with a connection open, frees itself on the loop") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  auto server = std::make_unique<AdminServer>(&loop, AdminHandlers{});
  REQUIRE(server->listen({"127.0.0.1", 0}) == 0);
  Client c;
  c.start(&loop, server->port(), "GET /readyz HTTP/1.1\r\n\r\n");
  run_until(&loop, [&] { return !c.received.empty(); });
  CHECK(c.received == response("200 OK", kText, "ready\n"));  // no handler: ready
  server.reset();
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(c.eof);
  CHECK(uv_loop_close(&loop) == 0);  // and ASan sees no leak
}

TEST_CASE("admin server: listen errors are returned, and close still works") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  AdminServer first(&loop, AdminHandlers{});
  REQUIRE(first.listen({"127.0.0.1", 0}) == 0);
  AdminServer second(&loop, AdminHandlers{});
  CHECK(second.listen({"127.0.0.1", first.port()}) == UV_EADDRINUSE);
  CHECK(second.port() == 0);
  AdminServer third(&loop, AdminHandlers{});
  CHECK(third.listen({"not-an-address", 1}) < 0);
  AdminServer never_listened(&loop, AdminHandlers{});
  int closed = 0;
  for (AdminServer* s : {&first, &second, &third, &never_listened}) s->close([&] { ++closed; });
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(closed == 4);
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("admin server: IPv6 loopback") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  AdminServer server(&loop, AdminHandlers{});
  int rc = server.listen({"::1", 0});
  // Some containers have no IPv6 at all; then the error must at least be reported.
  if (rc == 0) {
    CHECK(server.port() > 0);
  } else {
    MESSAGE("no IPv6 loopback here: " << uv_strerror(rc));
    CHECK(rc == UV_EADDRNOTAVAIL);
  }
  bool closed = false;
  server.close([&] { closed = true; });
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(closed);
  CHECK(uv_loop_close(&loop) == 0);
}
