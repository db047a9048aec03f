// lib/http/admin_server.cc — AdminServer: /healthz, /readyz, /metrics and the owner's routes over
// HTTP/1.1 on libuv.
//
// Created by proxy/ on the main loop (tests: on their own loop). Ownership, in libuv's terms:
//   - Impl owns the listening handle (initialised in the constructor, so close() always has one
//     handle to close and on_closed always comes from a close callback, on the loop) and every
//     Connection;
//   - a Connection owns two handles (its socket and its timer) and frees itself after both close
//     callbacks; its pending write and shutdown requests are cancelled by uv_close and complete
//     (ECANCELED) before those callbacks, so they never see a freed Connection;
//   - Impl counts the listener plus one per live Connection and, after the last one, calls
//     on_closed. If the AdminServer is destroyed first, Impl owns itself until then.
// A connection ends by: the client's EOF or error; the idle timer (kRequestTimeout to send each
// request); a response marked Connection: close (then shutdown, discard input until EOF or
// kLingerTimeout, close — so the client reads the answer before our close, not an RST); a client
// that does not read its answers (write queue over kMaxWriteQueue); or close().
#include "lib/http/admin_server.h"

#include <spdlog/spdlog.h>

#include <string_view>
#include <unordered_set>
#include <vector>

#include "lib/http/request_parser.h"

namespace dotgate::http {

namespace {

// A client has this long to send each request (from accept or from the previous request);
// measured per request, not per byte, so a client trickling a head byte by byte (slowloris)
// cannot hold a connection open indefinitely.
constexpr std::uint64_t kRequestTimeoutMs = 30'000;
// After a Connection: close answer, how long we keep reading (and discarding) for the client's EOF.
constexpr std::uint64_t kLingerTimeoutMs = 5'000;
// A client that pipelines requests but never reads the answers would grow our write queue.
constexpr std::size_t kMaxWriteQueue = 1 << 20;
// Probes and one Prometheus: a few connections. More are accepted and closed at once.
constexpr std::size_t kMaxConnections = 64;
constexpr std::size_t kReadBufferSize = 16 * 1024;

struct Response {
  int status = 200;
  std::string_view content_type = "text/plain; charset=utf-8";
  std::string body;
  std::string extra_headers;  // complete "Name: value\r\n" lines
};

struct WriteRequest {
  uv_write_t req;
  std::string data;
};

struct Connection;

// Everything the server owns. Not AdminServer::Impl itself, so that it can outlive the
// AdminServer (see the file header) and be named by the libuv callbacks below.
struct ServerState {
  ServerState(uv_loop_t* l, AdminHandlers h) : loop(l), handlers(std::move(h)) {}

  void close_all(std::function<void()> callback);
  void release_one();  // a close callback completed (listener, or the last of a Connection's)
  Response dispatch(const Request& request) const;
  Response dispatch_route(const Request& request, std::string_view path) const;  // handlers.routes

  uv_loop_t* loop;
  AdminHandlers handlers;
  uv_tcp_t listener{};
  int open = 0;  // listener + live Connections
  bool closing = false;
  bool owner_gone = false;  // ~AdminServer ran: free ourselves after the last close callback
  std::function<void()> on_closed;
  std::unordered_set<Connection*> connections;
  // One buffer for every read: libuv on Unix calls alloc, read(2) and read_cb back to back, and
  // read_cb consumes the bytes before returning (the parser copies what it keeps).
  char read_buffer[kReadBufferSize];
};

struct Connection {
  explicit Connection(ServerState* s) : server(s) {}

  ServerState* server;
  uv_tcp_t tcp{};
  uv_timer_t timer{};
  uv_shutdown_t shutdown_req{};
  RequestParser parser;
  std::vector<Request> requests;  // scratch for one feed()
  int open = 0;                   // handles not yet through their close callback
  bool closing = false;
  bool ending = false;  // answered with Connection: close; input is now discarded
};

void on_connection_handle_closed(uv_handle_t* handle) {
  auto* c = static_cast<Connection*>(handle->data);
  if (--c->open > 0) return;
  ServerState* server = c->server;
  server->connections.erase(c);
  delete c;
  server->release_one();
}

void close_connection(Connection* c) {
  if (c->closing) return;
  c->closing = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), on_connection_handle_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&c->timer), on_connection_handle_closed);
}

void on_timer(uv_timer_t* timer) { close_connection(static_cast<Connection*>(timer->data)); }

void on_write(uv_write_t* req, int status) {
  auto* w = reinterpret_cast<WriteRequest*>(req);
  auto* c = static_cast<Connection*>(req->handle->data);
  delete w;
  if (status < 0) close_connection(c);  // no-op when the cancel came from our own close
}

void on_shutdown(uv_shutdown_t* req, int status) {
  auto* c = static_cast<Connection*>(req->handle->data);
  // Answer sent and FIN queued: wait (reading, discarding) for the client's EOF or the timer.
  if (status < 0) close_connection(c);
}

std::string_view status_reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

// Queues one response. `close` adds Connection: close (the caller ends the connection after it).
void send_response(Connection* c, const Response& r, bool head_only, bool close, bool http10_keep_alive) {
  auto* w = new WriteRequest;
  std::string& out = w->data;
  out.reserve(160 + r.body.size());
  out.append("HTTP/1.1 ").append(std::to_string(r.status)).append(" ").append(status_reason(r.status)).append("\r\n");
  out.append("Content-Type: ").append(r.content_type).append("\r\n");
  // HEAD: the length the GET body would have (RFC 9110 9.3.2), and no body.
  out.append("Content-Length: ").append(std::to_string(r.body.size())).append("\r\n");
  out.append("Cache-Control: no-store\r\n");
  out.append(r.extra_headers);
  if (close) out.append("Connection: close\r\n");
  else if (http10_keep_alive) out.append("Connection: keep-alive\r\n");
  out.append("\r\n");
  if (!head_only) out.append(r.body);

  uv_buf_t buf = uv_buf_init(out.data(), static_cast<unsigned>(out.size()));
  if (uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&c->tcp), &buf, 1, on_write) < 0) {
    delete w;
    close_connection(c);
    return;
  }
  if (uv_stream_get_write_queue_size(reinterpret_cast<uv_stream_t*>(&c->tcp)) > kMaxWriteQueue) {
    spdlog::debug("admin: closing a connection that does not read its responses");
    close_connection(c);
  }
}

// After a Connection: close answer: half-close, then linger for the client's EOF.
void end_connection(Connection* c) {
  if (c->closing || c->ending) return;
  c->ending = true;
  uv_timer_start(&c->timer, on_timer, kLingerTimeoutMs, 0);
  if (uv_shutdown(&c->shutdown_req, reinterpret_cast<uv_stream_t*>(&c->tcp), on_shutdown) < 0)
    close_connection(c);
}

void on_alloc(uv_handle_t* handle, std::size_t /*suggested*/, uv_buf_t* buf) {
  auto* c = static_cast<Connection*>(handle->data);
  *buf = uv_buf_init(c->server->read_buffer, sizeof c->server->read_buffer);
}

void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* c = static_cast<Connection*>(stream->data);
  if (nread == 0 || c->closing) return;
  if (nread < 0) {  // EOF or error: nothing more to answer
    close_connection(c);
    return;
  }
  if (c->ending) return;  // lingering: discard

  c->requests.clear();
  bool ok = c->parser.feed(std::string_view(buf->base, static_cast<std::size_t>(nread)), c->requests);
  for (const auto& request : c->requests) {
    Response r = c->server->dispatch(request);
    bool http10_keep_alive = request.keep_alive && request.http_major == 1 && request.http_minor == 0;
    send_response(c, r, request.method == "HEAD", !request.keep_alive, http10_keep_alive);
    if (c->closing) return;
    if (!request.keep_alive) {
      end_connection(c);  // anything after it is ignored, including a parse error
      return;
    }
  }
  if (!c->requests.empty()) uv_timer_start(&c->timer, on_timer, kRequestTimeoutMs, 0);
  if (!ok) {
    spdlog::debug("admin: bad request: {}", c->parser.error());
    Response r{400, "text/plain; charset=utf-8", "bad request\n", {}};
    send_response(c, r, false, true, false);
    end_connection(c);
  }
}

void on_listener_closed(uv_handle_t* handle) { static_cast<ServerState*>(handle->data)->release_one(); }

void on_new_connection(uv_stream_t* listener, int status) {
  auto* server = static_cast<ServerState*>(listener->data);
  if (status < 0) {
    spdlog::warn("admin: accept failed: {}", uv_strerror(status));
    return;
  }
  if (server->closing) return;
  auto* c = new Connection(server);
  uv_tcp_init(server->loop, &c->tcp);
  uv_timer_init(server->loop, &c->timer);
  c->tcp.data = c;
  c->timer.data = c;
  c->open = 2;
  ++server->open;
  server->connections.insert(c);
  if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(&c->tcp)) < 0 ||
      server->connections.size() > kMaxConnections) {
    close_connection(c);
    return;
  }
  uv_timer_start(&c->timer, on_timer, kRequestTimeoutMs, 0);
  if (uv_read_start(reinterpret_cast<uv_stream_t*>(&c->tcp), on_alloc, on_read) < 0) close_connection(c);
}

Response ServerState::dispatch_route(const Request& request, std::string_view path) const {
  std::string allow;
  for (const AdminRoute& route : handlers.routes) {
    if (route.path != path) continue;
    bool head_of_get = request.method == "HEAD" && route.method == "GET";
    if (request.method == route.method || head_of_get) {
      // The owner's code: an exception must not unwind through libuv's C frames.
      try {
        AdminAnswer a = route.handler();
        return Response{a.status, "text/plain; charset=utf-8", std::move(a.body), {}};
      } catch (const std::exception& e) {
        spdlog::error("admin: {} handler failed: {}", path, e.what());
        return Response{500, "text/plain; charset=utf-8", "internal error\n", {}};
      }
    }
    allow += (allow.empty() ? "" : ", ") + route.method + (route.method == "GET" ? ", HEAD" : "");
  }
  if (allow.empty()) return Response{404, "text/plain; charset=utf-8", "not found\n", {}};
  return Response{405, "text/plain; charset=utf-8", "method not allowed\n", "Allow: " + allow + "\r\n"};
}

Response ServerState::dispatch(const Request& request) const {
  std::string_view target = request.target;
  std::string_view path = target.substr(0, target.find('?'));
  enum { Health, Ready, Metrics } resource;
  if (path == "/healthz") resource = Health;
  else if (path == "/readyz") resource = Ready;
  else if (path == "/metrics") resource = Metrics;
  else return dispatch_route(request, path);

  if (request.method != "GET" && request.method != "HEAD")
    return Response{405, "text/plain; charset=utf-8", "method not allowed\n", "Allow: GET, HEAD\r\n"};

  // Handlers are the caller's code: an exception must not unwind through libuv's C frames.
  try {
    switch (resource) {
      case Health:
        return Response{200, "text/plain; charset=utf-8", "ok\n", {}};
      case Ready:
        if (!handlers.ready || handlers.ready()) return Response{200, "text/plain; charset=utf-8", "ready\n", {}};
        return Response{503, "text/plain; charset=utf-8", "not ready\n", {}};
      case Metrics:
        return Response{200, "text/plain; version=0.0.4; charset=utf-8",
                        handlers.metrics ? handlers.metrics() : std::string(), {}};
    }
  } catch (const std::exception& e) {
    spdlog::error("admin: {} handler failed: {}", path, e.what());
  }
  return Response{500, "text/plain; charset=utf-8", "internal error\n", {}};
}

void ServerState::close_all(std::function<void()> callback) {
  if (closing) return;
  closing = true;
  on_closed = std::move(callback);
  uv_close(reinterpret_cast<uv_handle_t*>(&listener), on_listener_closed);
  for (Connection* c : connections) close_connection(c);
}

void ServerState::release_one() {
  if (--open > 0) return;
  auto callback = std::move(on_closed);
  on_closed = nullptr;
  // on_closed may destroy the AdminServer, so `this` is not touched after it.
  if (owner_gone) delete this;
  if (callback) callback();
}

}  // namespace

struct AdminServer::Impl {
  ServerState* state;  // owned; see ~AdminServer
};

AdminServer::AdminServer(uv_loop_t* loop, AdminHandlers handlers)
    : impl_(std::make_unique<Impl>(Impl{new ServerState(loop, std::move(handlers))})) {
  ServerState* s = impl_->state;
  uv_tcp_init(loop, &s->listener);  // no socket yet: bind() creates it, IPv4 or IPv6
  s->listener.data = s;
  s->open = 1;
}

AdminServer::~AdminServer() {
  ServerState* s = impl_->state;
  if (s->open == 0) {  // every close callback done: nothing refers to it any more
    delete s;
    return;
  }
  s->close_all(nullptr);
  s->owner_gone = true;  // freed by release_one() after the last close callback
}

int AdminServer::listen(const config::Endpoint& endpoint) {
  if (impl_->state->closing) return UV_EINVAL;
  sockaddr_storage addr{};
  int rc = endpoint.address.find(':') != std::string::npos
               ? uv_ip6_addr(endpoint.address.c_str(), endpoint.port, reinterpret_cast<sockaddr_in6*>(&addr))
               : uv_ip4_addr(endpoint.address.c_str(), endpoint.port, reinterpret_cast<sockaddr_in*>(&addr));
  if (rc < 0) return rc;
  if ((rc = uv_tcp_bind(&impl_->state->listener, reinterpret_cast<const sockaddr*>(&addr), 0)) < 0) return rc;
  return uv_listen(reinterpret_cast<uv_stream_t*>(&impl_->state->listener), 64, on_new_connection);
}

int AdminServer::port() const {
  sockaddr_storage addr{};
  int len = sizeof addr;
  if (impl_->state->closing ||
      uv_tcp_getsockname(&impl_->state->listener, reinterpret_cast<sockaddr*>(&addr), &len) < 0)
    return 0;
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  return 0;
}

void AdminServer::close(std::function<void()> on_closed) { impl_->state->close_all(std::move(on_closed)); }

}  // namespace dotgate::http
