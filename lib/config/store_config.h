// lib/config/store_config.h — where dotgate keeps state that outlives a session (greylisting's
// triplets and counters): the top-level "store" object.
//
// Read once by config.cc (read_store); plain data afterwards. lib/store opens the backend it
// names (store::open_service) when a policy that needs one is built (at start-up and on SIGHUP);
// an environment that cannot be opened is refused there, with the key's path, like a bad key.
//   "store": {"backend": "lmdb" | "redis",
//             "lmdb":  {"path", "map_size", "sync_interval", "purge_interval"},
//             "redis": {"address", "port", "prefix", "database", "password",
//                       "connect_timeout", "command_timeout", "reconnect_interval"}}
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace dotgate::config {

class Node;

struct LmdbStoreConfig {
  // A directory (made when missing, one level): LMDB's data.mdb and lock.mdb live in it.
  std::string path = "/var/lib/dotgate/store";
  // The largest the file may grow to (LMDB maps it whole; the file itself grows as written).
  std::uint64_t map_size = 1ull << 30;
  // Commits do not fsync (MDB_NOSYNC); the writer flushes this often: what a power loss may lose.
  std::chrono::milliseconds sync_interval{1'000};
  // How often the writer sweeps out expired entries (reads ignore them anyway).
  std::chrono::milliseconds purge_interval{300'000};
  bool operator==(const LmdbStoreConfig&) const = default;
};

struct RedisStoreConfig {
  std::string address = "127.0.0.1";  // an IP literal: hiredis would resolve a name blocking the loop
  int port = 6379;
  std::string prefix = "dotgate:";    // before every key, so one Redis can serve other programs too
  std::uint32_t database = 0;         // SELECT, when not 0
  std::string password;               // AUTH, when set
  std::chrono::milliseconds connect_timeout{1'000};
  std::chrono::milliseconds command_timeout{500};
  std::chrono::milliseconds reconnect_interval{1'000};
  bool operator==(const RedisStoreConfig&) const = default;
};

struct StoreConfig {
  enum class Backend { Lmdb, Redis };
  Backend backend = Backend::Lmdb;
  LmdbStoreConfig lmdb;
  RedisStoreConfig redis;
  bool operator==(const StoreConfig&) const = default;
};

// "store": {...}. Throws ConfigError with the key's path.
void read_store(Node& node, StoreConfig& out);

}  // namespace dotgate::config
