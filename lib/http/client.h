// lib/http/client.h — HTTP/1.1 POST client on one libuv loop, with a keep-alive connection pool
// for one target (an IP literal and a port: no DNS, no TLS yet; a verdict service on loopback or
// a private network is the case this serves).
//
// Who owns what: a Client belongs to one loop and is used only from that loop's thread. It owns
// its connections (each a net::TcpConnection with its own ResponseParser) and each request's
// deadline timer. It is reference counted by its users (retain/release); after the last
// release() it cancels what is left (no callback runs any more), closes every handle and frees
// itself after the last close callback (counted closes), so the loop can end cleanly.
// Requests: post() queues a request and returns its id; its callback runs exactly once, from the
// loop (never inside post()), with a status and body or an error reason — unless cancel(id) ran
// first, after which nothing is called. A request waits for a free connection when
// max_connections are busy; its deadline counts from post().
// Reuse and retry: a connection goes back to the pool when the response said keep-alive and
// nothing followed it. An idle connection the server closed is dropped; a request sent on a
// reused connection that ends before one byte of the response arrived is retried once on a fresh
// connection (the server may have closed it just as we wrote: RFC 9112 9.3.1). Never after a byte
// of the response: the service may have acted on the request.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <uv.h>

#include "lib/http/response_parser.h"
#include "lib/net/tcp_connection.h"

namespace dotgate::http {

// "http://127.0.0.1:8080/path" or "http://[::1]:8080/path" (port defaults to 80, path to "/").
struct Url {
  std::string host;         // the IP literal, without brackets
  int port = 80;
  std::string path = "/";   // with the query, as written
  std::string host_header;  // "127.0.0.1:8080" / "[::1]:8080"
};
// Returns an empty string on success, else why the URL is refused.
std::string parse_url(std::string_view text, Url& out);

// The kind of a ClientResult error, for metrics labels: "connect", "timeout", "closed" or
// "malformed" (anything else the client reports is about the response it got).
std::string error_label(std::string_view client_error);

struct ClientResult {
  std::string error;  // empty on success: "connection refused", "timeout", "closed early", "malformed: ..."
  int status = 0;
  std::string content_type;
  std::string body;
  bool ok() const { return error.empty(); }
};

class Client {
 public:
  using Callback = std::function<void(ClientResult)>;
  using Headers = std::vector<std::pair<std::string, std::string>>;

  Client(uv_loop_t* loop, Url url, std::size_t max_connections);
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void retain() { ++references_; }
  void release();  // the last one closes everything and frees the client (later, from the loop)

  // Header names and values must not contain CR or LF (the caller checks what comes from outside).
  std::uint64_t post(const Headers& headers, std::string body, std::uint64_t timeout_ms, Callback callback);
  void cancel(std::uint64_t id);

  const Url& url() const { return url_; }
  std::size_t connections() const { return connections_.size(); }
  std::uint64_t connections_opened() const { return opened_; }

 private:
  struct Connection;
  struct Exchange;
  class Events;

  ~Client() = default;
  void pump();
  void assign(Exchange* ex, Connection* conn);
  void send(Connection* conn);
  void complete(Exchange* ex, ClientResult result);
  void drop(Exchange* ex);  // detach everything, close its timer; the object goes in the close callback
  void close_connection(Connection* conn);
  void connection_ended(Connection* conn, int status);
  void connection_data(Connection* conn, std::string_view data);
  void connection_connected(Connection* conn, int status);
  void handle_closed();
  static void on_timer(uv_timer_t* timer);
  static void on_timer_closed(uv_handle_t* handle);

  uv_loop_t* loop_;
  Url url_;
  sockaddr_storage address_{};
  std::size_t max_connections_;
  net::ReadBuffer read_buffer_;
  std::vector<Connection*> connections_;
  std::deque<Exchange*> waiting_;
  std::unordered_map<std::uint64_t, Exchange*> exchanges_;
  std::uint64_t next_id_ = 1;
  std::uint64_t opened_ = 0;
  std::size_t open_handles_ = 0;
  std::size_t references_ = 0;
  bool closing_ = false;
};

}  // namespace dotgate::http
