// lib/tls/tls_bio.h — the OpenSSL BIO under a TlsEngine: a memory BIO of our own that reads from
// the bytes of the call at hand and writes into that call's output string.
//
// Why not BIO_s_mem: a mem BIO keeps its buffer at the largest size it ever reached (a 64 KiB
// read, a 16 KiB record), per direction, for the life of the session; with 10,000 idle sessions
// that is hundreds of MiB holding nothing. This one holds nothing between calls: receive() lends
// it the caller's bytes, and what OpenSSL writes goes straight into the caller's string.
// Outside a call it has nothing to read (retry) and nowhere to write (retry), which OpenSSL
// treats as "would block"; the engine only calls OpenSSL with an Io set.
// Called by tls_engine.cc only. Freed by SSL_free (SSL_set_bio hands it to the SSL object).
#pragma once

#include "lib/tls/tls_engine.h"

namespace dotgate::tls {

BIO* new_engine_bio(TlsEngine::Io* io);

}  // namespace dotgate::tls
