// lib/net/stream.cc — see stream.h and connector.h: dropping a stream, the events that go nowhere,
// and the plain TCP connector.
#include "lib/net/stream.h"

#include <uv.h>

#include "lib/net/connector.h"

namespace dotgate::net {

bool StreamEnd::clean() const { return status == UV_EOF; }

namespace {
class Nowhere final : public Stream::Events {
 public:
  void on_data(Stream&, std::string_view) override {}
  void on_end(Stream&, const StreamEnd&) override {}
};
}  // namespace

Stream::Events& Stream::nowhere() {
  static Nowhere events;  // stateless: shared by every loop thread
  return events;
}

void drop(Stream* stream, bool flush) {
  if (!stream) return;
  stream->set_events(&Stream::nowhere());
  if (flush)
    stream->close_after_flush();
  else
    stream->close();
}

Stream* TcpConnector::connect(const sockaddr* address, Stream::Events* events, int& error) {
  auto* c = TcpConnection::create(loop_, events, buffer_);
  error = c->connect(address);
  if (error == 0) return c;
  drop(c);  // the handle is initialised: it must be closed, and nobody hears of it
  return nullptr;
}

}  // namespace dotgate::net
