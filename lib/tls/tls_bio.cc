// lib/tls/tls_bio.cc — see tls_bio.h. One BIO_METHOD for the process, built on first use.
#include "lib/tls/tls_bio.h"

#include <algorithm>
#include <cstring>

#include <openssl/bio.h>

namespace dotgate::tls {

namespace {

TlsEngine::Io* io_of(BIO* b) { return static_cast<TlsEngine::Io*>(BIO_get_data(b)); }

int bio_write(BIO* b, const char* data, int len) {
  BIO_clear_retry_flags(b);
  auto* io = io_of(b);
  if (!io || !io->out) {
    BIO_set_retry_write(b);
    return -1;
  }
  if (len <= 0) return 0;
  io->out->append(data, static_cast<std::size_t>(len));
  return len;
}

int bio_read(BIO* b, char* buf, int len) {
  BIO_clear_retry_flags(b);
  auto* io = io_of(b);
  if (!io || io->in.empty() || len <= 0) {
    BIO_set_retry_read(b);  // "no more for now": never an EOF; the stream above says when it ends
    return -1;
  }
  auto n = std::min(io->in.size(), static_cast<std::size_t>(len));
  std::memcpy(buf, io->in.data(), n);
  io->in.remove_prefix(n);
  return static_cast<int>(n);
}

long bio_ctrl(BIO* b, int cmd, long, void*) {
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;  // every write is in the caller's string already
    case BIO_CTRL_PENDING: {
      auto* io = io_of(b);
      return io ? static_cast<long>(io->in.size()) : 0;
    }
    case BIO_CTRL_WPENDING:
      return 0;
    default:
      return 0;  // not supported (kTLS queries, push/pop, dup...)
  }
}

int bio_create(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}

int bio_destroy(BIO* b) {
  BIO_set_data(b, nullptr);
  return 1;
}

BIO_METHOD* method() {
  static BIO_METHOD* m = [] {
    BIO_METHOD* made = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "dotgate engine");
    BIO_meth_set_write(made, bio_write);
    BIO_meth_set_read(made, bio_read);
    BIO_meth_set_ctrl(made, bio_ctrl);
    BIO_meth_set_create(made, bio_create);
    BIO_meth_set_destroy(made, bio_destroy);
    return made;
  }();  // kept for the process: every engine of every thread uses it
  return m;
}

}  // namespace

BIO* new_engine_bio(TlsEngine::Io* io) {
  BIO* b = BIO_new(method());
  if (b) BIO_set_data(b, io);
  return b;
}

}  // namespace dotgate::tls
