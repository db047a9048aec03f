// lib/store/lmdb_store.h — the embedded state store: one LMDB environment per directory and
// process, as Postfix's own lmdb: tables.
//
// How the worker threads share it (LMDB's rules: one MDB_env per file and process, any number
// of readers, one writer at a time):
//   - reads run on the asking loop's thread, in that loop's own read-only transaction (reset
//     after each get, renewed before the next: no reader slot is taken per read). A read is a
//     B-tree walk in a memory map: microseconds, and it never waits for the writer. The answer is
//     still posted to the loop (completion_queue.h), never given inside get().
//   - writes never run on a loop thread: set and increment go to the environment's writer
//     thread, which takes whatever is queued, applies it in one write transaction and commits
//     (group commit: one commit for all the writes that arrived while the last one ran), then
//     posts each answer to the loop that asked. increment reads and writes inside that one
//     transaction, so counts from several threads (or several dotgate processes on the same
//     directory: LMDB locks writers across processes) never lose an update.
// Durability: commits do not fsync (MDB_NOSYNC), so a commit costs a few page writes into the
// page cache; the writer calls mdb_env_sync every sync_interval (1 s) when anything changed. A
// dotgate that is killed loses nothing it committed (the pages are in the kernel's cache); a
// machine that loses power loses at most the last sync_interval. LMDB stays consistent either
// way (without MDB_WRITEMAP it only loses durability, never integrity).
// Entries carry their expiry (8 bytes, Unix seconds, before the value); a read treats an expired
// entry as missing, and the writer sweeps expired entries out every purge_interval, a bounded
// number per transaction so that writes waiting behind the sweep are not held up.
// Lifetime: the environment lives while any service or loop store holds it; its destructor stops
// the writer (which commits and syncs what is queued) and closes the environment.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "lib/config/store_config.h"
#include "lib/store/store.h"

namespace dotgate::store {

// Throws config::ConfigError ("store.lmdb.path: cannot open LMDB environment ...").
std::shared_ptr<StoreService> open_lmdb_service(const config::LmdbStoreConfig& config, std::chrono::milliseconds linger);

// For the tests: entries in the environment, expired ones included (what the sweep will remove).
std::size_t lmdb_entry_count(StoreService& service);

}  // namespace dotgate::store
