// test/bench/uv_relay.c — the least a libuv relay can do: a reference point for relay.sh.
//
//   uv_relay LISTEN_PORT DOWNSTREAM_PORT      (127.0.0.1 on both sides)
//
// Accepts, connects to the downstream, and copies bytes both ways with one read and one write per
// event, as dotgate's TcpConnection does (a shared read buffer, uv_try_write first, the rest
// queued), but understands nothing: no SMTP, no timers, no logs, no pool. relay.sh runs it beside
// haproxy and dotgate (BENCH_UVRELAY=1) so that what the event library costs on this machine and
// what dotgate's own work costs can be told apart. Not part of dotgate; no error is more than
// "close both sides".
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct Pair {
  uv_tcp_t client, downstream;
  uv_connect_t connect;
  char* early;  // what the client sent before the downstream connected
  size_t early_size;
  int connected, closing, handles_open;
} Pair;

typedef struct Write {
  uv_write_t req;
  char bytes[];
} Write;

static uv_loop_t* loop;
static struct sockaddr_in downstream_address;
static char read_buffer[64 * 1024];

static void on_closed(uv_handle_t* handle) {
  Pair* p = handle->data;
  if (--p->handles_open == 0) {
    free(p->early);
    free(p);
  }
}

static void close_pair(Pair* p) {
  if (p->closing) return;
  p->closing = 1;
  uv_close((uv_handle_t*)&p->client, on_closed);
  uv_close((uv_handle_t*)&p->downstream, on_closed);
}

static void on_write(uv_write_t* req, int status) {
  Pair* p = req->data;
  free(req);
  if (status < 0) close_pair(p);
}

static void forward(Pair* p, uv_stream_t* to, const char* bytes, size_t size) {
  uv_buf_t buf = uv_buf_init((char*)bytes, (unsigned)size);
  int n = uv_try_write(to, &buf, 1);
  if (n == (int)size) return;
  if (n < 0 && n != UV_EAGAIN) {
    close_pair(p);
    return;
  }
  if (n > 0) {
    bytes += n;
    size -= (size_t)n;
  }
  Write* w = malloc(sizeof *w + size);
  memcpy(w->bytes, bytes, size);
  w->req.data = p;
  buf = uv_buf_init(w->bytes, (unsigned)size);
  if (uv_write(&w->req, to, &buf, 1, on_write) != 0) {
    free(w);
    close_pair(p);
  }
}

static void on_alloc(uv_handle_t* handle, size_t size, uv_buf_t* buf) {
  (void)handle;
  (void)size;
  *buf = uv_buf_init(read_buffer, sizeof read_buffer);
}

static void on_read(uv_stream_t* from, ssize_t nread, const uv_buf_t* buf) {
  Pair* p = from->data;
  if (nread == 0 || p->closing) return;
  if (nread < 0) {  // either side gone: SMTP has nothing to say after that
    close_pair(p);
    return;
  }
  if (from == (uv_stream_t*)&p->client && !p->connected) {
    p->early = realloc(p->early, p->early_size + (size_t)nread);
    memcpy(p->early + p->early_size, buf->base, (size_t)nread);
    p->early_size += (size_t)nread;
    return;
  }
  uv_stream_t* to = from == (uv_stream_t*)&p->client ? (uv_stream_t*)&p->downstream : (uv_stream_t*)&p->client;
  forward(p, to, buf->base, (size_t)nread);
}

static void on_connect(uv_connect_t* req, int status) {
  Pair* p = req->data;
  if (p->closing) return;
  if (status < 0) {
    close_pair(p);
    return;
  }
  p->connected = 1;
  uv_tcp_nodelay(&p->downstream, 1);
  uv_read_start((uv_stream_t*)&p->downstream, on_alloc, on_read);
  if (p->early_size) forward(p, (uv_stream_t*)&p->downstream, p->early, p->early_size);
}

static void on_connection(uv_stream_t* server, int status) {
  if (status < 0) return;
  Pair* p = calloc(1, sizeof *p);
  uv_tcp_init(loop, &p->client);
  uv_tcp_init(loop, &p->downstream);
  p->client.data = p->downstream.data = p->connect.data = p;
  p->handles_open = 2;
  if (uv_accept(server, (uv_stream_t*)&p->client) != 0) {
    close_pair(p);
    return;
  }
  uv_tcp_nodelay(&p->client, 1);
  uv_read_start((uv_stream_t*)&p->client, on_alloc, on_read);
  if (uv_tcp_connect(&p->connect, &p->downstream, (const struct sockaddr*)&downstream_address, on_connect) != 0)
    close_pair(p);
}

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  loop = uv_default_loop();
  struct sockaddr_in listen_address;
  uv_ip4_addr("127.0.0.1", atoi(argv[1]), &listen_address);
  uv_ip4_addr("127.0.0.1", atoi(argv[2]), &downstream_address);
  uv_tcp_t server;
  uv_tcp_init(loop, &server);
  if (uv_tcp_bind(&server, (const struct sockaddr*)&listen_address, 0) != 0) return 1;
  if (uv_listen((uv_stream_t*)&server, 4096, on_connection) != 0) return 1;
  return uv_run(loop, UV_RUN_DEFAULT);
}
