// lib/http/client.cc — see client.h. Handles and their ends:
//   Connection: a TcpConnection (frees itself after on_closed) plus our Connection record, which
//     is deleted in on_closed too; counted in open_handles_ from create to on_closed.
//   Exchange: one request; owns a uv_timer_t (its deadline), counted in open_handles_ from init to
//     its close callback, where the Exchange is deleted. It is removed from exchanges_ as soon as
//     it completes or is cancelled, so an id is never answered twice.
// The client frees itself when it is closing and open_handles_ reaches zero.
#include "lib/http/client.h"

#include <algorithm>
#include <charconv>

namespace dotgate::http {

std::string error_label(std::string_view client_error) {
  auto starts = [&](std::string_view p) { return client_error.substr(0, p.size()) == p; };
  if (starts("connection refused") || starts("connect failed")) return "connect";
  if (starts("timeout")) return "timeout";
  if (starts("closed early")) return "closed";
  return "malformed";
}

std::string parse_url(std::string_view text, Url& out) {
  constexpr std::string_view kScheme = "http://";
  if (text.substr(0, kScheme.size()) != kScheme) return "expected an http:// URL (no TLS yet)";
  std::string_view rest = text.substr(kScheme.size());
  std::size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  out.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  for (char c : out.path)
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return "invalid character in the URL path";
  std::string_view host, port;
  if (!authority.empty() && authority[0] == '[') {
    std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return "unterminated [IPv6] host";
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return "unexpected text after the [IPv6] host";
      port = after.substr(1);
    }
  } else {
    std::size_t colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (host.empty()) return "missing host";
  out.port = 80;
  if (!port.empty()) {
    int p = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || ptr != port.data() + port.size() || p < 1 || p > 65535) return "invalid port";
    out.port = p;
  }
  out.host = std::string(host);
  sockaddr_storage ss;
  // No DNS: a lookup would block or need a resolver on the loop; an IP literal is all we take.
  if (net::make_sockaddr(out.host, out.port, &ss) != 0) return "host must be an IP literal (no DNS lookups)";
  bool v6 = out.host.find(':') != std::string::npos;
  out.host_header = (v6 ? "[" + out.host + "]" : out.host) + ":" + std::to_string(out.port);
  return {};
}

struct Client::Exchange {
  Client* client = nullptr;
  std::uint64_t id = 0;
  std::string wire;  // the whole request, ready to write
  Callback callback;
  uv_timer_t timer{};
  Connection* conn = nullptr;
  bool retried = false;
  bool has_pending = false;  // a result found inside a call, delivered from the loop via the timer
  ClientResult pending;
};

class Client::Events final : public net::Stream::Events {
 public:
  explicit Events(Client* c) : client(c) {}
  void on_connected(net::Stream& t, int status) override;
  void on_data(net::Stream& t, std::string_view data) override;
  void on_end(net::Stream& t, const net::StreamEnd& end) override;
  void on_closed(net::Stream& t) override;
  Client* client;
};

struct Client::Connection {
  explicit Connection(Client* c) : events(c) {}
  Events events;
  net::TcpConnection* tcp = nullptr;
  ResponseParser parser;
  Exchange* current = nullptr;
  bool connected = false;
  bool reused = false;  // has completed a response before: the server may close it any time
  bool closing = false;
};

Client::Client(uv_loop_t* loop, Url url, std::size_t max_connections)
    : loop_(loop), url_(std::move(url)), max_connections_(std::max<std::size_t>(max_connections, 1)) {
  net::make_sockaddr(url_.host, url_.port, &address_);  // validated by parse_url
}

void Client::release() {
  if (references_ > 0) --references_;
  if (references_ > 0 || closing_) return;
  closing_ = true;
  // Nobody is left to hear an answer: cancel silently, close every handle.
  std::vector<std::uint64_t> ids;
  for (auto& [id, _] : exchanges_) ids.push_back(id);
  for (auto id : ids) cancel(id);
  std::vector<Connection*> conns = connections_;
  for (auto* c : conns) close_connection(c);
  if (open_handles_ == 0) delete this;
}

std::uint64_t Client::post(const Headers& headers, std::string body, std::uint64_t timeout_ms, Callback callback) {
  auto* ex = new Exchange;
  ex->client = this;
  ex->id = next_id_++;
  ex->callback = std::move(callback);
  std::string& w = ex->wire;
  w.reserve(body.size() + 512);
  w.append("POST ").append(url_.path).append(" HTTP/1.1\r\nHost: ").append(url_.host_header).append("\r\n");
  for (const auto& [name, value] : headers) w.append(name).append(": ").append(value).append("\r\n");
  w.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n\r\n");
  w.append(body);
  uv_timer_init(loop_, &ex->timer);
  ex->timer.data = ex;
  ++open_handles_;
  uv_timer_start(&ex->timer, &Client::on_timer, timeout_ms, 0);
  exchanges_[ex->id] = ex;
  waiting_.push_back(ex);
  pump();
  return ex->id;
}

void Client::pump() {
  while (!waiting_.empty() && !closing_) {
    Exchange* front = waiting_.front();
    Connection* idle = nullptr;
    // A retry goes to a fresh connection: the other idle ones are as old as the one that failed.
    if (!front->retried)
      for (auto* c : connections_)
        if (!c->closing && c->current == nullptr && c->connected) idle = c;
    if (idle == nullptr && connections_.size() >= max_connections_) {
      // Full: a connection still connecting will pick the next request when it is free. A
      // retry on a full pool makes room by dropping an idle connection.
      Connection* spare = nullptr;
      for (auto* c : connections_)
        if (!c->closing && c->current == nullptr && c->connected) spare = c;
      if (spare == nullptr) return;
      close_connection(spare);
    }
    Exchange* ex = front;
    waiting_.pop_front();
    if (idle != nullptr) {
      assign(ex, idle);
      continue;
    }
    auto* conn = new Connection(this);
    conn->tcp = net::TcpConnection::create(loop_, &conn->events, &read_buffer_);
    conn->tcp->user_tag = conn;
    ++open_handles_;
    ++opened_;
    connections_.push_back(conn);
    conn->current = ex;
    ex->conn = conn;
    int rc = conn->tcp->connect(reinterpret_cast<const sockaddr*>(&address_));
    if (rc != 0) {
      // Found inside a call (maybe post()): deliver from the loop, through the timer.
      ex->conn = nullptr;
      conn->current = nullptr;
      close_connection(conn);
      ex->has_pending = true;
      ex->pending.error = std::string("connect failed: ") + uv_strerror(rc);
      uv_timer_start(&ex->timer, &Client::on_timer, 0, 0);
    }
  }
}

void Client::assign(Exchange* ex, Connection* conn) {
  conn->current = ex;
  ex->conn = conn;
  send(conn);
}

void Client::send(Connection* conn) {
  conn->parser.reset();
  conn->tcp->start_reading();
  conn->tcp->write(conn->current->wire);
}

void Client::connection_connected(Connection* conn, int status) {
  if (conn->closing) return;
  if (status != 0) {
    Exchange* ex = conn->current;
    close_connection(conn);
    if (ex != nullptr) {
      ClientResult r;
      r.error = status == UV_ECONNREFUSED ? "connection refused" : std::string("connect failed: ") + uv_strerror(status);
      complete(ex, std::move(r));
    }
    pump();
    return;
  }
  conn->connected = true;
  conn->tcp->set_nodelay();
  if (conn->current != nullptr) send(conn);
  else conn->tcp->start_reading();  // idle: notice when the server closes it
  pump();
}

void Client::connection_data(Connection* conn, std::string_view data) {
  if (conn->closing) return;
  Exchange* ex = conn->current;
  if (ex == nullptr) {
    // Bytes nobody asked for on an idle connection: the stream is out of step; drop it.
    close_connection(conn);
    return;
  }
  if (!conn->parser.feed(data)) {
    std::string why = "malformed: " + conn->parser.error();
    close_connection(conn);
    complete(ex, ClientResult{why, 0, {}, {}});
    pump();
    return;
  }
  if (!conn->parser.complete()) return;
  Response resp = conn->parser.take();
  bool reusable = resp.keep_alive && !conn->parser.extra_bytes();
  conn->current = nullptr;
  ex->conn = nullptr;
  if (reusable) {
    conn->reused = true;
  } else {
    close_connection(conn);
  }
  complete(ex, ClientResult{{}, resp.status, std::move(resp.content_type), std::move(resp.body)});
  pump();
}

void Client::connection_ended(Connection* conn, int status) {
  if (conn->closing) return;
  Exchange* ex = conn->current;
  if (ex == nullptr) {  // an idle connection the server closed: just forget it
    close_connection(conn);
    return;
  }
  // A response delimited by the close completes here.
  if (status == UV_EOF && conn->parser.started() && conn->parser.finish()) {
    Response resp = conn->parser.take();
    close_connection(conn);
    complete(ex, ClientResult{{}, resp.status, std::move(resp.content_type), std::move(resp.body)});
    pump();
    return;
  }
  bool retry = conn->reused && !conn->parser.started() && !ex->retried;
  close_connection(conn);
  if (retry) {
    ex->retried = true;
    waiting_.push_front(ex);
  } else {
    std::string why = conn->parser.started() ? "closed early: response cut short" : "closed early: no response";
    if (status != UV_EOF) why += std::string(" (") + uv_strerror(status) + ")";
    complete(ex, ClientResult{why, 0, {}, {}});
  }
  pump();
}

void Client::close_connection(Connection* conn) {
  if (conn->closing) return;
  conn->closing = true;
  if (conn->current != nullptr) {
    conn->current->conn = nullptr;
    conn->current = nullptr;
  }
  connections_.erase(std::remove(connections_.begin(), connections_.end(), conn), connections_.end());
  conn->tcp->close();
}

void Client::complete(Exchange* ex, ClientResult result) {
  Callback cb = std::move(ex->callback);
  ex->callback = nullptr;
  drop(ex);
  if (cb) cb(std::move(result));  // may post() or release(): nothing of `ex` is touched after
}

void Client::drop(Exchange* ex) {
  exchanges_.erase(ex->id);
  waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), ex), waiting_.end());
  if (ex->conn != nullptr) {
    // A request in flight: its answer would arrive on this connection and be read as the next
    // request's. The connection cannot be reused.
    Connection* conn = ex->conn;
    ex->conn = nullptr;
    conn->current = nullptr;
    close_connection(conn);
  }
  ex->callback = nullptr;
  uv_timer_stop(&ex->timer);
  uv_close(reinterpret_cast<uv_handle_t*>(&ex->timer), &Client::on_timer_closed);
}

void Client::cancel(std::uint64_t id) {
  auto it = exchanges_.find(id);
  if (it == exchanges_.end()) return;
  drop(it->second);
}

void Client::on_timer(uv_timer_t* timer) {
  auto* ex = static_cast<Exchange*>(timer->data);
  Client* c = ex->client;
  if (ex->has_pending) {
    c->complete(ex, std::move(ex->pending));
  } else {
    c->complete(ex, ClientResult{"timeout", 0, {}, {}});
  }
  c->pump();
}

void Client::on_timer_closed(uv_handle_t* handle) {
  auto* ex = static_cast<Exchange*>(handle->data);
  Client* c = ex->client;
  delete ex;
  c->handle_closed();
}

void Client::handle_closed() {
  --open_handles_;
  if (closing_ && open_handles_ == 0) delete this;
}

void Client::Events::on_connected(net::Stream& t, int status) {
  client->connection_connected(static_cast<Connection*>(t.user_tag), status);
}
void Client::Events::on_data(net::Stream& t, std::string_view data) {
  client->connection_data(static_cast<Connection*>(t.user_tag), data);
}
void Client::Events::on_end(net::Stream& t, const net::StreamEnd& end) {
  client->connection_ended(static_cast<Connection*>(t.user_tag), end.status);
}
void Client::Events::on_closed(net::Stream& t) {
  auto* conn = static_cast<Connection*>(t.user_tag);
  Client* c = conn->events.client;
  delete conn;
  c->handle_closed();
}

}  // namespace dotgate::http
