// lib/net/listener.cc — see listener.h.
#include "lib/net/listener.h"

#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/net/tcp_connection.h"

namespace dotgate::net {

Listener::Listener(uv_loop_t* loop, AcceptFn on_connection) : accept_(std::move(on_connection)) {
  uv_tcp_init(loop, &tcp_);
  tcp_.data = this;
}

int Listener::open(const config::Endpoint& endpoint, std::string& error) {
  sockaddr_storage ss{};
  int rc = make_sockaddr(endpoint.address, endpoint.port, &ss);
  if (rc != 0) {
    error = "bad address " + endpoint.to_string();
    return rc;
  }
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    error = std::string("socket: ") + std::strerror(errno);
    return -errno;
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    int e = errno;
    ::close(fd);
    error = std::string("SO_REUSEPORT: ") + std::strerror(e);
    return -e;
  }
  if (ss.ss_family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  socklen_t len = ss.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    int e = errno;
    ::close(fd);
    error = "bind " + endpoint.to_string() + ": " + std::strerror(e);
    return -e;
  }
  rc = uv_tcp_open(&tcp_, fd);
  if (rc != 0) {
    ::close(fd);
    error = std::string("uv_tcp_open: ") + uv_strerror(rc);
    return rc;
  }
  opened_ = true;
  // A backlog of 1024: bursts of connections (a Postfix queue flush) must not be refused by the
  // kernel while a loop is busy.
  rc = uv_listen(reinterpret_cast<uv_stream_t*>(&tcp_), 1024, &Listener::on_connection);
  if (rc != 0) {
    error = "listen " + endpoint.to_string() + ": " + uv_strerror(rc);
    return rc;
  }
  return 0;
}

int Listener::port() const {
  sockaddr_storage ss{};
  int len = sizeof ss;
  if (uv_tcp_getsockname(&tcp_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
}

void Listener::on_connection(uv_stream_t* server, int status) {
  auto* self = static_cast<Listener*>(server->data);
  if (status < 0) return;  // EMFILE and friends: the next accept may succeed; libuv retries
  self->accept_(server);
}

void Listener::close(std::function<void()> on_closed) {
  on_closed_ = std::move(on_closed);
  if (uv_is_closing(reinterpret_cast<uv_handle_t*>(&tcp_))) return;
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), [](uv_handle_t* h) {
    auto* self = static_cast<Listener*>(h->data);
    if (self->on_closed_) self->on_closed_();
  });
}

}  // namespace dotgate::net
