// test/bench/uv_sink.c — an SMTP sink that holds 10,000 connections: the downstream of sessions.sh.
//
//   uv_sink LISTEN_PORT      (127.0.0.1; prints "messages N" on SIGTERM or SIGINT, then exits)
//
// Why not Postfix's smtp-sink: it keeps its timers in one sorted list and walks it on every
// command of every connection, so with 10,000 connections open each command costs it ~10,000 steps
// (measured: smtp-sink straight from smtp-source fell from ~3,500 to 74 messages/s once 10,000 idle
// connections were open) and the benchmark measured smtp-sink instead of dotgate. This one keeps
// no timers and answers from a table, as smtp-sink does: 220 greeting; EHLO gets 250 with
// PIPELINING, 8BITMIME and SIZE; HELO, MAIL, RCPT, RSET, NOOP and anything else 250; DATA 354,
// then the body is read to its lone dot and answered 250; QUIT 221 and a close. Lines may come
// pipelined or a byte at a time. It discards the mail. Not part of dotgate; no error is more than
// "close the connection".
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#define MAX_LINE 4096  // longer lines are cut (their start answered): a sink need not judge them

typedef struct Conn {
  uv_tcp_t tcp;
  char line[MAX_LINE];
  size_t len;
  int in_data, quitting;
} Conn;

typedef struct Write {
  uv_write_t req;
  char bytes[];
} Write;

static uv_loop_t* loop;
static uv_tcp_t server;
static uv_signal_t sigterm, sigint;
static char read_buffer[64 * 1024];
static unsigned long long messages;

static const char kGreeting[] = "220 sink.bench ESMTP uv_sink\r\n";
static const char kEhlo[] = "250-sink.bench\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 104857600\r\n";
static const char kOk[] = "250 2.0.0 Ok\r\n";
static const char kData[] = "354 End data with <CR><LF>.<CR><LF>\r\n";
static const char kQueued[] = "250 2.0.0 Ok: queued\r\n";
static const char kBye[] = "221 2.0.0 Bye\r\n";

static void on_closed(uv_handle_t* h) { free(h->data); }

static void close_conn(Conn* c) {
  if (!uv_is_closing((uv_handle_t*)&c->tcp)) uv_close((uv_handle_t*)&c->tcp, on_closed);
}

static void on_written(uv_write_t* req, int status) {
  Conn* c = req->data;
  free(req);
  if (status < 0 || c->quitting) close_conn(c);
}

static void reply(Conn* c, const char* text, size_t n) {
  uv_buf_t buf = uv_buf_init((char*)text, (unsigned)n);
  int rc = uv_try_write((uv_stream_t*)&c->tcp, &buf, 1);
  if (rc == (int)n) {
    if (c->quitting) close_conn(c);
    return;
  }
  if (rc < 0 && rc != UV_EAGAIN) {
    close_conn(c);
    return;
  }
  size_t done = rc > 0 ? (size_t)rc : 0;
  Write* w = malloc(sizeof(Write) + n - done);
  memcpy(w->bytes, text + done, n - done);
  w->req.data = c;
  buf = uv_buf_init(w->bytes, (unsigned)(n - done));
  if (uv_write(&w->req, (uv_stream_t*)&c->tcp, &buf, 1, on_written) != 0) {
    free(w);
    close_conn(c);
  }
}
#define REPLY(c, s) reply((c), (s), sizeof(s) - 1)

// One whole line (without its CRLF or LF).
static void on_line(Conn* c, const char* s, size_t n) {
  if (c->in_data) {
    if (n == 1 && s[0] == '.') {
      c->in_data = 0;
      ++messages;
      REPLY(c, kQueued);
    }
    return;
  }
  if (n >= 4 && strncasecmp(s, "EHLO", 4) == 0) REPLY(c, kEhlo);
  else if (n >= 4 && strncasecmp(s, "DATA", 4) == 0) {
    c->in_data = 1;
    REPLY(c, kData);
  } else if (n >= 4 && strncasecmp(s, "QUIT", 4) == 0) {
    c->quitting = 1;
    uv_read_stop((uv_stream_t*)&c->tcp);
    REPLY(c, kBye);
  } else REPLY(c, kOk);
}

static void on_alloc(uv_handle_t* h, size_t size, uv_buf_t* buf) {
  (void)h;
  (void)size;
  *buf = uv_buf_init(read_buffer, sizeof read_buffer);
}

static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  Conn* c = stream->data;
  if (nread < 0) {
    close_conn(c);
    return;
  }
  for (ssize_t i = 0; i < nread && !c->quitting; ++i) {
    char ch = buf->base[i];
    if (ch == '\n') {
      size_t n = c->len;
      if (n > 0 && c->line[n - 1] == '\r') --n;
      on_line(c, c->line, n);
      c->len = 0;
    } else if (c->len < MAX_LINE) {
      c->line[c->len++] = ch;
    }
  }
}

static void on_connection(uv_stream_t* srv, int status) {
  if (status < 0) return;
  Conn* c = calloc(1, sizeof(Conn));
  uv_tcp_init(loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(srv, (uv_stream_t*)&c->tcp) != 0) {
    close_conn(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  REPLY(c, kGreeting);
  uv_read_start((uv_stream_t*)&c->tcp, on_alloc, on_read);
}

static void on_signal(uv_signal_t* s, int signum) {
  (void)s;
  (void)signum;
  printf("messages %llu\n", messages);
  fflush(stdout);
  exit(0);  // the kernel closes every connection
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: uv_sink LISTEN_PORT\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  loop = uv_default_loop();
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", atoi(argv[1]), &addr);
  uv_tcp_init(loop, &server);
  if (uv_tcp_bind(&server, (const struct sockaddr*)&addr, 0) != 0 ||
      uv_listen((uv_stream_t*)&server, 4096, on_connection) != 0) {
    fprintf(stderr, "uv_sink: cannot listen on 127.0.0.1:%s\n", argv[1]);
    return 1;
  }
  uv_signal_init(loop, &sigterm);
  uv_signal_start(&sigterm, on_signal, SIGTERM);
  uv_signal_init(loop, &sigint);
  uv_signal_start(&sigint, on_signal, SIGINT);
  return uv_run(loop, UV_RUN_DEFAULT);
}
