// test/unit/http/client_test.cc — lib/http/client on its own loop over loopback: a refused
// connection, cancel() (no callback afterwards), a timeout, and keep-alive reuse. Each test ends
// by releasing the client and checking that the loop closes with nothing left open
// (uv_loop_close() == 0): the client's counted closes freed everything.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <uv.h>

#include "lib/http/client.h"

using dotgate::http::Client;
using dotgate::http::ClientResult;
using dotgate::http::Url;
using dotgate::http::parse_url;

namespace {

// A loopback server that answers every request head it sees with a canned response (or, when
// `silent`, never). `accepted` counts connections; close() closes them all.
struct Server {
  struct Conn {
    uv_tcp_t tcp{};
    Server* server = nullptr;
    std::string pending;
  };
  uv_tcp_t listener{};
  std::vector<Conn*> conns;
  bool silent = false;
  int accepted = 0;
  int port = 0;

  void start(uv_loop_t* loop) {
    uv_tcp_init(loop, &listener);
    listener.data = this;
    sockaddr_in addr{};
    uv_ip4_addr("127.0.0.1", 0, &addr);
    REQUIRE(uv_tcp_bind(&listener, reinterpret_cast<const sockaddr*>(&addr), 0) == 0);
    REQUIRE(uv_listen(reinterpret_cast<uv_stream_t*>(&listener), 8, on_connection) == 0);
    sockaddr_storage ss{};
    int len = sizeof ss;
    uv_tcp_getsockname(&listener, reinterpret_cast<sockaddr*>(&ss), &len);
    port = ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  }
  static void on_connection(uv_stream_t* s, int) {
    auto* self = static_cast<Server*>(s->data);
    auto* c = new Conn;
    c->server = self;
    uv_tcp_init(s->loop, &c->tcp);
    c->tcp.data = c;
    uv_accept(s, reinterpret_cast<uv_stream_t*>(&c->tcp));
    self->conns.push_back(c);
    ++self->accepted;
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(&c->tcp),
        [](uv_handle_t*, std::size_t size, uv_buf_t* b) { *b = uv_buf_init(new char[size], static_cast<unsigned>(size)); },
        [](uv_stream_t* st, ssize_t n, const uv_buf_t* b) {
          auto* cn = static_cast<Conn*>(st->data);
          if (n > 0) cn->pending.append(b->base, static_cast<std::size_t>(n));
          delete[] b->base;
          if (n < 0) uv_read_stop(st);
          for (std::size_t at; !cn->server->silent && (at = cn->pending.find("\r\n\r\n")) != std::string::npos;) {
            cn->pending.erase(0, at + 4);
            static char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
            uv_buf_t buf = uv_buf_init(reply, sizeof reply - 1);
            uv_try_write(st, &buf, 1);
          }
        });
  }
  void close() {
    uv_close(reinterpret_cast<uv_handle_t*>(&listener), nullptr);
    for (auto* c : conns)
      uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), [](uv_handle_t* h) { delete static_cast<Conn*>(h->data); });
    conns.clear();
  }
};

Url url_for(int port) {
  Url u;
  REQUIRE(parse_url("http://127.0.0.1:" + std::to_string(port) + "/v", u).empty());
  return u;
}

}  // namespace

TEST_CASE("http client: connection refused, then the loop closes cleanly") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  // A port that was just free: bind, read it, close.
  Server probe;
  probe.start(&loop);
  int port = probe.port;
  probe.close();
  uv_run(&loop, UV_RUN_DEFAULT);

  auto* client = new Client(&loop, url_for(port), 2);
  client->retain();
  std::vector<std::string> results;
  client->post({}, "x", 5000, [&](ClientResult r) { results.push_back(r.error); });
  CHECK(results.empty());  // never inside post()
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(results == std::vector<std::string>{"connection refused"});
  client->release();
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("http client: keep-alive reuse, cancel and timeout") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  Server server;
  server.start(&loop);
  auto* client = new Client(&loop, url_for(server.port), 2);
  client->retain();
  std::vector<std::string> log;

  // Two requests, the second from the first's callback: one connection.
  client->post({{"X-A", "1"}}, "body", 5000, [&](ClientResult r) {
    log.push_back(std::to_string(r.status) + " " + r.body);
    client->post({}, "", 5000, [&](ClientResult r2) {
      log.push_back(std::to_string(r2.status) + " " + r2.body);
      server.silent = true;
      // Cancelled at once: its callback must never run.
      auto id = client->post({}, "", 5000, [&](ClientResult) { log.push_back("cancelled request answered"); });
      client->cancel(id);
      // Unanswered: times out.
      client->post({}, "", 50, [&](ClientResult r3) {
        log.push_back(r3.error);
        client->release();  // closes the pool; the loop can end
        server.close();
      });
    });
  });
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(log == std::vector<std::string>{"200 ok", "200 ok", "timeout"});
  // The first two shared one connection; the cancelled one cost it (its answer could no longer be
  // told apart), so the timed-out one needed a second.
  CHECK(server.accepted == 2);
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("http client: release with a request in flight calls nothing") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  Server server;
  server.silent = true;
  server.start(&loop);
  auto* client = new Client(&loop, url_for(server.port), 1);
  client->retain();
  bool called = false;
  client->post({}, "x", 5000, [&](ClientResult) { called = true; });
  uv_timer_t t;
  uv_timer_init(&loop, &t);
  t.data = client;
  uv_timer_start(&t, [](uv_timer_t* h) { static_cast<Client*>(h->data)->release(); uv_close(reinterpret_cast<uv_handle_t*>(h), nullptr); }, 50, 0);
  uv_timer_t t2;
  uv_timer_init(&loop, &t2);
  t2.data = &server;
  uv_timer_start(&t2, [](uv_timer_t* h) { static_cast<Server*>(h->data)->close(); uv_close(reinterpret_cast<uv_handle_t*>(h), nullptr); }, 100, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_FALSE(called);
  CHECK(uv_loop_close(&loop) == 0);
}
