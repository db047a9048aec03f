// lib/net/stream.cc — see stream.h: dropping a stream, and the events that go nowhere.
#include "lib/net/stream.h"

#include <uv.h>

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

}  // namespace dotgate::net
