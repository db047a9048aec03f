// lib/net/tcp_connection.cc — see tcp_connection.h. Close sequence: close() -> uv_close ->
// on_close -> events_->on_closed -> delete. Writes carry their own copy of the bytes and are freed
// in their callback, which libuv calls (with UV_ECANCELED) even when the handle closes first.
#include "lib/net/tcp_connection.h"

#include <cstdlib>
#include <cstring>
#include <memory>

namespace dotgate::net {

namespace {
struct WriteRequest {
  uv_write_t req;
  std::size_t size;
  char bytes[1];  // allocated with the request: one allocation per write
};
}  // namespace

TcpConnection* TcpConnection::create(uv_loop_t* loop, Events* events, ReadBuffer* buffer) {
  auto* c = new TcpConnection(events, buffer);
  uv_tcp_init(loop, &c->tcp_);
  c->tcp_.data = c;
  return c;
}

int TcpConnection::accept_from(uv_stream_t* server) {
  return uv_accept(server, reinterpret_cast<uv_stream_t*>(&tcp_));
}

int TcpConnection::connect(const sockaddr* address) {
  connect_req_.data = this;
  return uv_tcp_connect(&connect_req_, &tcp_, address, &TcpConnection::on_connect);
}

void TcpConnection::on_connect(uv_connect_t* req, int status) {
  auto* c = static_cast<TcpConnection*>(req->data);
  if (c->closing_) return;  // closed while connecting: the status is UV_ECANCELED, nobody cares
  c->events_->on_connected(*c, status);
}

void TcpConnection::set_nodelay() { uv_tcp_nodelay(&tcp_, 1); }

int TcpConnection::start_reading() {
  if (reading_ || closing_ || ended_) return 0;
  int rc = uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), &TcpConnection::on_alloc,
                         &TcpConnection::on_read);
  if (rc == 0) reading_ = true;
  return rc;
}

void TcpConnection::stop_reading() {
  if (!reading_) return;
  uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
  reading_ = false;
}

void TcpConnection::on_alloc(uv_handle_t* handle, std::size_t, uv_buf_t* buf) {
  auto* c = static_cast<TcpConnection*>(handle->data);
  // The loop runs one read callback at a time, so one buffer serves all connections.
  if (c->buffer_->in_use) {
    *buf = uv_buf_init(nullptr, 0);  // libuv reports UV_ENOBUFS; cannot happen single-threaded
    return;
  }
  c->buffer_->in_use = true;
  *buf = uv_buf_init(c->buffer_->data, ReadBuffer::kSize);
}

void TcpConnection::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* c = static_cast<TcpConnection*>(stream->data);
  if (buf->base == c->buffer_->data) c->buffer_->in_use = false;
  if (nread == 0 || c->closing_) return;
  if (nread < 0) {
    c->stop_reading();
    c->end(static_cast<int>(nread));
    return;
  }
  if (c->buffer_->busy_poll) c->buffer_->busy_poll->touch();
  c->events_->on_data(*c, std::string_view(buf->base, static_cast<std::size_t>(nread)));
}

void TcpConnection::write(std::string_view bytes) {
  if (closing_ || bytes.empty()) return;
  if (queued_bytes_ == 0) {
    // Try the kernel first. A uv_write that completes still costs a write request, a deferred
    // callback and (libuv 1.44) an epoll_ctl per write; SMTP replies and commands almost always
    // fit the socket buffer at once. What does not fit is queued below, in order; errors other
    // than EAGAIN are left to uv_write, which reports them from the loop, not from inside write().
    uv_buf_t buf = uv_buf_init(const_cast<char*>(bytes.data()), static_cast<unsigned>(bytes.size()));
    int n = uv_try_write(reinterpret_cast<uv_stream_t*>(&tcp_), &buf, 1);
    if (n == static_cast<int>(bytes.size())) return;
    if (n > 0) bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  auto* w = static_cast<WriteRequest*>(std::malloc(sizeof(WriteRequest) + bytes.size()));
  w->size = bytes.size();
  std::memcpy(w->bytes, bytes.data(), bytes.size());
  w->req.data = this;
  uv_buf_t buf = uv_buf_init(w->bytes, static_cast<unsigned>(bytes.size()));
  int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&tcp_), &buf, 1, &TcpConnection::on_write);
  if (rc != 0) {
    std::free(w);
    end(rc);
    return;
  }
  queued_bytes_ += bytes.size();
}

void TcpConnection::on_write(uv_write_t* req, int status) {
  auto* w = reinterpret_cast<WriteRequest*>(req);
  auto* c = static_cast<TcpConnection*>(req->data);
  std::size_t size = w->size;
  std::free(w);
  // After uv_close the handle may already be gone only once all write callbacks have run, so `c`
  // is valid here (libuv cancels pending writes before calling the close callback).
  c->queued_bytes_ -= size;
  if (c->closing_) return;
  if (status < 0) {
    c->stop_reading();
    c->end(status);
    return;
  }
  if (c->queued_bytes_ == 0) c->events_->on_drained(*c);
}

void TcpConnection::end(int status) {
  if (ended_) return;
  ended_ = true;
  events_->on_end(*this, StreamEnd{status, status == UV_EOF ? "connection closed" : uv_strerror(status)});
}

void TcpConnection::close() {
  if (closing_) return;
  closing_ = true;
  reading_ = false;
  if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&tcp_)))
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &TcpConnection::on_close);
}

void TcpConnection::close_after_flush() {
  if (closing_ || shutting_down_) return;
  if (queued_bytes_ == 0) {
    // Everything written is in the kernel already; close(2) sends it before the FIN. This
    // saves a poll round and a shutdown(2) that fails anyway when the peer left first.
    close();
    return;
  }
  stop_reading();
  shutting_down_ = true;
  shutdown_req_.data = this;
  if (uv_shutdown(&shutdown_req_, reinterpret_cast<uv_stream_t*>(&tcp_), &TcpConnection::on_shutdown) != 0)
    close();
}

void TcpConnection::on_shutdown(uv_shutdown_t* req, int) {
  static_cast<TcpConnection*>(req->data)->close();
}

void TcpConnection::on_close(uv_handle_t* handle) {
  auto* c = static_cast<TcpConnection*>(handle->data);
  c->events_->on_closed(*c);
  delete c;
}

namespace {
std::string address_name(const sockaddr_storage& ss);
}  // namespace

std::string TcpConnection::peer_name() const {
  sockaddr_storage ss{};
  int len = sizeof ss;
  if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "unknown";
  return address_name(ss);
}

std::string TcpConnection::local_name() const {
  sockaddr_storage ss{};
  int len = sizeof ss;
  if (uv_tcp_getsockname(&tcp_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "unknown";
  return address_name(ss);
}

namespace {
std::string address_name(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = {0};
  std::string out;
  if (ss.ss_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
    uv_ip4_name(in, host, sizeof host);
    out.append(host).append(":").append(std::to_string(ntohs(in->sin_port)));
    return out;
  }
  auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
  uv_ip6_name(in6, host, sizeof host);
  out.append("[").append(host).append("]:").append(std::to_string(ntohs(in6->sin6_port)));
  return out;
}
}  // namespace

int make_sockaddr(const std::string& address, int port, sockaddr_storage* out) {
  std::memset(out, 0, sizeof *out);
  if (address.find(':') != std::string::npos)
    return uv_ip6_addr(address.c_str(), port, reinterpret_cast<sockaddr_in6*>(out));
  return uv_ip4_addr(address.c_str(), port, reinterpret_cast<sockaddr_in*>(out));
}

}  // namespace dotgate::net
