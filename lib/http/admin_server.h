// lib/http/admin_server.h — the admin HTTP endpoint: /healthz, /readyz, /metrics, and the routes
// its owner adds (proxy/main.cc: /maintenance).
//
// Runs on the loop it is given (dotgate's main loop, never a worker loop), owns its listening
// handle and one handle per connection; close() closes them all and calls `on_closed` after the
// last close callback. Requests are parsed by lib/http/request_parser (llhttp); a malformed
// request gets 400 and its connection is closed — it cannot disturb SMTP, which runs on other loops.
// GET/HEAD, and POST for the routes that ask for it (a GET never changes anything: a crawler or a
// probe pointed at the wrong path must not); keep-alive honoured; a request head over 8 KiB is
// refused (a client must not be able to grow our memory); request bodies are read and ignored.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <uv.h>

#include "lib/config/config.h"

namespace dotgate::http {

struct AdminAnswer {
  int status = 200;  // 200, 403, 404, 409, 500 or 503
  std::string body;  // text/plain
};

// An endpoint of the owner's, beside the three built-in ones. Runs on the admin loop.
struct AdminRoute {
  std::string method;  // "GET" (HEAD is answered as GET without the body) or "POST"
  std::string path;    // exact, without the query
  std::function<AdminAnswer()> handler;
};

struct AdminHandlers {
  std::function<bool()> ready;               // /readyz: 200 "ready" or 503 "not ready"
  std::function<std::string()> metrics;      // /metrics body (text/plain; version=0.0.4)
  std::vector<AdminRoute> routes;
};

class AdminServer {
 public:
  AdminServer(uv_loop_t* loop, AdminHandlers handlers);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Binds and listens; returns 0 or a negative libuv error. Port 0 picks a free port (tests).
  int listen(const config::Endpoint& endpoint);
  // The bound port once listen() succeeded (useful after port 0), else 0.
  int port() const;
  // Closes the listener and every connection; `on_closed` runs from the loop after the last
  // close callback (never from inside close()). Call once. Destroying the server without close()
  // closes it the same way and frees its state after the last callback (the loop must run).
  void close(std::function<void()> on_closed);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dotgate::http
