// test/bench/webhook_server.cc — a verdict service that costs as little as possible, for benchmarks.
//
//   webhook_server --listen 127.0.0.1:PORT [--delay-us N]
//
// Built and started by test/bench/webhook.sh and test/bench/relay_webhook.sh; not a test and not
// an example of a real service (test/integration/webhook.py is that). One thread, one libuv loop,
// HTTP/1.1 keep-alive parsed with llhttp (strict, as dotgate builds it): every POST gets
// `200` with `{"action":"accept"}` and a Content-Length, anything else `405`. Pipelined requests
// in one read are answered in order with one write. The body is counted and dropped as it streams
// (never buffered, so a large message costs no memory here). A request that does not parse gets
// `400` and the connection is closed after it.
// --delay-us N holds each answer N µs after its request completed (a timerfd per connection,
// polled by the loop: uv_timer counts in milliseconds), to model a slower service without
// blocking the other connections.
// Who owns what: the Server owns the listener, the signal handles and every Connection; a
// Connection owns its uv_tcp_t and, with a delay, its timerfd's uv_poll_t, and frees itself after
// the last of their close callbacks (counted). SIGTERM or SIGINT closes everything; the loop then
// ends with nothing open, and the line "webhook_server: N requests on M connections" goes to stderr.
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>

#include <llhttp.h>
#include <uv.h>

namespace {

constexpr std::string_view kAccept =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 19\r\n\r\n{\"action\":\"accept\"}";
constexpr std::string_view kAcceptClose =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 19\r\nConnection: close\r\n\r\n"
    "{\"action\":\"accept\"}";
constexpr std::string_view kNotPost = "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n";
constexpr std::string_view kBadRequest =
    "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

struct Server;

struct Connection {
  Server* server;
  uv_tcp_t tcp{};
  llhttp_t parser{};
  uv_poll_t poll{};  // the timerfd, when --delay-us
  int timer_fd = -1;
  int open_handles = 0;
  bool closing = false;
  bool last_answered = false;      // a last answer is queued: nothing more is parsed
  bool close_after_write = false;  // that answer is in c->out or written: close once it is out
  std::string out;                 // answers of this read, written at its end
  // With a delay: answers not yet due, oldest first (the delay is constant, so in due order).
  struct Pending {
    std::uint64_t due_ns;
    std::string_view answer;
    bool last;
  };
  std::deque<Pending> pending;
};

struct Server {
  uv_loop_t* loop = nullptr;
  uv_tcp_t listener{};
  uv_signal_t sigterm{}, sigint{};
  llhttp_settings_t settings{};
  std::uint64_t delay_ns = 0;
  std::unordered_set<Connection*> connections;
  std::uint64_t requests = 0, accepted = 0;
  bool stopping = false;
};

struct WriteRequest {
  uv_write_t req;
  std::string bytes;
  Connection* conn;
};

void close_connection(Connection* c);

void on_handle_closed(uv_handle_t* h) {
  auto* c = static_cast<Connection*>(h->data);
  if (--c->open_handles == 0) {
    if (c->timer_fd >= 0) ::close(c->timer_fd);
    delete c;
  }
}

void close_connection(Connection* c) {
  if (c->closing) return;
  c->closing = true;
  c->server->connections.erase(c);
  uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), on_handle_closed);
  if (c->timer_fd >= 0) uv_close(reinterpret_cast<uv_handle_t*>(&c->poll), on_handle_closed);
}

void on_written(uv_write_t* req, int status) {
  auto* w = reinterpret_cast<WriteRequest*>(req);
  Connection* c = w->conn;
  delete w;
  // Close after the last byte of a last answer: when nothing is left queued behind this write.
  if (status < 0 || (c->close_after_write && c->pending.empty() && c->tcp.write_queue_size == 0))
    close_connection(c);
}

// Writes what is in c->out: uv_try_write first (the usual case on loopback: the socket buffer has
// room), uv_write for the rest. The Connection outlives the write: uv_close cancels it first.
void flush(Connection* c) {
  if (c->closing || c->out.empty()) return;
  uv_buf_t buf = uv_buf_init(c->out.data(), static_cast<unsigned>(c->out.size()));
  int n = uv_try_write(reinterpret_cast<uv_stream_t*>(&c->tcp), &buf, 1);
  if (n == UV_EAGAIN) n = 0;
  if (n < 0) return close_connection(c);
  if (static_cast<std::size_t>(n) == c->out.size()) {
    c->out.clear();
    if (c->close_after_write && c->pending.empty()) close_connection(c);
    return;
  }
  auto* w = new WriteRequest{{}, c->out.substr(static_cast<std::size_t>(n)), c};
  c->out.clear();
  uv_buf_t rest = uv_buf_init(w->bytes.data(), static_cast<unsigned>(w->bytes.size()));
  if (uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&c->tcp), &rest, 1, on_written) < 0) {
    delete w;
    close_connection(c);
  }
}

void arm_timer(Connection* c) {
  if (c->pending.empty()) return;
  std::uint64_t now = uv_hrtime(), due = c->pending.front().due_ns;
  std::uint64_t wait = due > now ? due - now : 1;  // 0 would disarm the timer
  itimerspec spec{};
  spec.it_value.tv_sec = static_cast<time_t>(wait / 1'000'000'000);
  spec.it_value.tv_nsec = static_cast<long>(wait % 1'000'000'000);
  timerfd_settime(c->timer_fd, 0, &spec, nullptr);
}

void on_timer(uv_poll_t* poll, int status, int) {
  auto* c = static_cast<Connection*>(poll->data);
  std::uint64_t expirations;
  while (::read(c->timer_fd, &expirations, sizeof expirations) > 0) {
  }
  if (status < 0) return close_connection(c);
  std::uint64_t now = uv_hrtime();
  while (!c->pending.empty() && c->pending.front().due_ns <= now) {
    c->out += c->pending.front().answer;
    if (c->pending.front().last) c->close_after_write = true;
    c->pending.pop_front();
  }
  flush(c);
  if (!c->closing) arm_timer(c);
}

void answer(Connection* c, std::string_view bytes, bool last) {
  if (last) c->last_answered = true;
  if (c->server->delay_ns == 0) {
    c->out += bytes;
    if (last) c->close_after_write = true;
    return;
  }
  bool was_empty = c->pending.empty();
  c->pending.push_back({uv_hrtime() + c->server->delay_ns, bytes, last});
  if (was_empty) arm_timer(c);
}

int on_message_complete(llhttp_t* p) {
  auto* c = static_cast<Connection*>(p->data);
  ++c->server->requests;
  bool keep_alive = llhttp_should_keep_alive(p) != 0;
  if (llhttp_get_method(p) != HTTP_POST) answer(c, kNotPost, !keep_alive);
  else answer(c, keep_alive ? kAccept : kAcceptClose, !keep_alive);
  return keep_alive ? HPE_OK : HPE_PAUSED;  // nothing after a last request is read
}

void alloc_buffer(uv_handle_t*, std::size_t, uv_buf_t* buf) {
  static char data[64 * 1024];  // one thread, and each read is parsed before the next
  *buf = uv_buf_init(data, sizeof data);
}

void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* c = static_cast<Connection*>(stream->data);
  if (nread == 0) return;
  if (nread < 0) return close_connection(c);
  if (c->last_answered) return;  // bytes after a last request (or a bad one) are not read
  llhttp_errno_t err = llhttp_execute(&c->parser, buf->base, static_cast<std::size_t>(nread));
  if (err != HPE_OK && err != HPE_PAUSED) {
    answer(c, kBadRequest, true);  // after the answers to the requests before it
  }
  flush(c);
}

void on_connection(uv_stream_t* listener, int status) {
  auto* server = static_cast<Server*>(listener->data);
  if (status < 0 || server->stopping) return;
  auto* c = new Connection{};
  c->server = server;
  uv_tcp_init(server->loop, &c->tcp);
  c->tcp.data = c;
  c->open_handles = 1;
  if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0) {
    c->closing = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), on_handle_closed);
    return;
  }
  server->connections.insert(c);
  ++server->accepted;
  uv_tcp_nodelay(&c->tcp, 1);
  llhttp_init(&c->parser, HTTP_REQUEST, &server->settings);
  c->parser.data = c;
  if (server->delay_ns > 0) {
    c->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (c->timer_fd < 0 || uv_poll_init(server->loop, &c->poll, c->timer_fd) != 0) {
      std::fprintf(stderr, "webhook_server: timerfd: %s\n", std::strerror(errno));
      return close_connection(c);
    }
    c->poll.data = c;
    ++c->open_handles;
    uv_poll_start(&c->poll, UV_READABLE, on_timer);
  }
  uv_read_start(reinterpret_cast<uv_stream_t*>(&c->tcp), alloc_buffer, on_read);
}

void on_signal(uv_signal_t* signal, int) {
  auto* server = static_cast<Server*>(signal->data);
  if (server->stopping) return;
  server->stopping = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&server->listener), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&server->sigterm), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&server->sigint), nullptr);
  auto open = server->connections;  // close_connection erases from the set
  for (Connection* c : open) close_connection(c);
}

bool parse_listen(const std::string& text, sockaddr_in& out) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  int port = std::atoi(text.c_str() + colon + 1);
  return port > 0 && port < 65536 && uv_ip4_addr(text.substr(0, colon).c_str(), port, &out) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:8080";
  long long delay_us = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--listen" && i + 1 < argc) listen = argv[++i];
    else if (a == "--delay-us" && i + 1 < argc) delay_us = std::atoll(argv[++i]);
    else {
      std::fprintf(stderr, "usage: webhook_server --listen 127.0.0.1:PORT [--delay-us N]\n");
      return 2;
    }
  }
  sockaddr_in address{};
  if (!parse_listen(listen, address) || delay_us < 0) {
    std::fprintf(stderr, "webhook_server: bad --listen %s (IPv4 address:port) or --delay-us\n", listen.c_str());
    return 2;
  }

  Server server;
  server.loop = uv_default_loop();
  server.delay_ns = static_cast<std::uint64_t>(delay_us) * 1000;
  llhttp_settings_init(&server.settings);
  server.settings.on_message_complete = on_message_complete;

  uv_tcp_init(server.loop, &server.listener);
  server.listener.data = &server;
  int rc = uv_tcp_bind(&server.listener, reinterpret_cast<const sockaddr*>(&address), 0);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(&server.listener), 1024, on_connection);
  if (rc != 0) {
    std::fprintf(stderr, "webhook_server: listen on %s: %s\n", listen.c_str(), uv_strerror(rc));
    return 1;
  }
  for (auto [handle, signum] : {std::pair{&server.sigterm, SIGTERM}, std::pair{&server.sigint, SIGINT}}) {
    uv_signal_init(server.loop, handle);
    handle->data = &server;
    uv_signal_start(handle, on_signal, signum);
  }
  std::fprintf(stderr, "webhook_server: listening on %s, delay %lld us\n", listen.c_str(), delay_us);

  uv_run(server.loop, UV_RUN_DEFAULT);
  rc = uv_loop_close(server.loop);
  std::fprintf(stderr, "webhook_server: %llu requests on %llu connections%s\n",
               static_cast<unsigned long long>(server.requests), static_cast<unsigned long long>(server.accepted),
               rc == 0 ? "" : " (loop not closed cleanly)");
  return rc == 0 ? 0 : 1;
}
