// lib/net/connector.h — where new outgoing streams come from.
//
// The downstream link and the pool ask a Connector for a stream to the MTA instead of making a
// socket themselves: in production a TcpConnector (one per worker loop, sharing its read buffer);
// in unit tests a scripted one, so the link's and the pool's every path can be driven without a
// socket. A TLS connector (implicit TLS to the MTA) fits the same place.
#pragma once

#include <sys/socket.h>

#include "lib/net/stream.h"
#include "lib/net/tcp_connection.h"

namespace dotgate::net {

class Connector {
 public:
  virtual ~Connector() = default;
  // A stream on its way to `address`, reporting to `events`: its on_connected says how it went.
  // Null when the connect could not even start (`error`: the libuv code).
  virtual Stream* connect(const sockaddr* address, Stream::Events* events, int& error) = 0;
};

class TcpConnector final : public Connector {
 public:
  TcpConnector(uv_loop_t* loop, ReadBuffer* buffer) : loop_(loop), buffer_(buffer) {}
  Stream* connect(const sockaddr* address, Stream::Events* events, int& error) override;

 private:
  uv_loop_t* loop_;
  ReadBuffer* buffer_;
};

}  // namespace dotgate::net
