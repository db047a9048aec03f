// lib/config/store_config.cc — reads the "store" object (see store_config.h). Called by config.cc.
#include "lib/config/store_config.h"

#include <arpa/inet.h>

#include "lib/config/node.h"

namespace dotgate::config {

namespace {

void read_lmdb(Node& node, LmdbStoreConfig& l) {
  node.expect_object();
  if (auto n = node.member("path")) {
    l.path = n->as_string();
    // Absolute for the same reason as spool.directory: workers never chdir, but a relative path
    // would depend on where dotgate was started.
    if (l.path.empty() || l.path.front() != '/' || l.path.find('\0') != std::string::npos)
      n->fail("expected absolute path");
  }
  // 1 MiB .. 1 TiB: below, a few thousand triplets fill it; above, a typo (LMDB reserves the
  // address space up front).
  if (auto n = node.member("map_size")) l.map_size = n->as_uint(1ull << 20, 1ull << 40);
  // At most a minute: the interval is what a power loss may cost.
  if (auto n = node.member("sync_interval")) l.sync_interval = n->as_seconds(60, false);
  if (auto n = node.member("purge_interval")) l.purge_interval = n->as_seconds(86400, false);
  node.done();
}

void read_redis(Node& node, RedisStoreConfig& r) {
  node.expect_object();
  if (auto n = node.member("address")) {
    r.address = n->as_string();
    unsigned char buf[16];
    if (inet_pton(AF_INET, r.address.c_str(), buf) != 1 && inet_pton(AF_INET6, r.address.c_str(), buf) != 1)
      n->fail("expected IPv4 or IPv6 address literal");
  }
  if (auto n = node.member("port")) r.port = static_cast<int>(n->as_uint(1, 65535));
  if (auto n = node.member("prefix")) {
    r.prefix = n->as_string();
    // A key goes to Redis as one bulk string (any bytes are fine), but a prefix is for humans
    // running redis-cli: keep it printable and short.
    if (r.prefix.size() > 64) n->fail("at most 64 characters");
    for (unsigned char c : r.prefix)
      if (c <= ' ' || c >= 0x7f) n->fail("expected printable ASCII without spaces");
  }
  if (auto n = node.member("database")) r.database = static_cast<std::uint32_t>(n->as_uint(0, 15));
  if (auto n = node.member("password")) r.password = n->as_string();
  // Timeouts in seconds; a command answered in more than 10 s is no use to a session.
  if (auto n = node.member("connect_timeout")) r.connect_timeout = n->as_seconds(60, false);
  if (auto n = node.member("command_timeout")) r.command_timeout = n->as_seconds(10, false);
  if (auto n = node.member("reconnect_interval")) r.reconnect_interval = n->as_seconds(300, false);
  node.done();
}

}  // namespace

void read_store(Node& node, StoreConfig& out) {
  node.expect_object();
  static constexpr std::string_view kBackends[] = {"lmdb", "redis"};
  if (auto n = node.member("backend"))
    out.backend = n->as_choice(kBackends) == 0 ? StoreConfig::Backend::Lmdb : StoreConfig::Backend::Redis;
  if (auto n = node.member("lmdb")) read_lmdb(*n, out.lmdb);
  if (auto n = node.member("redis")) read_redis(*n, out.redis);
  node.done();
}

}  // namespace dotgate::config
