// lib/store/lmdb_store.cc — see lmdb_store.h.
#include "lib/store/lmdb_store.h"

#include <lmdb.h>
#include <sys/stat.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <limits>
#include <thread>
#include <vector>

#include "lib/config/config.h"
#include "lib/log/log.h"
#include "lib/store/completion_queue.h"
#include "lib/store/store_metrics.h"

namespace dotgate::store {

namespace {

constexpr std::string_view kBackend = "lmdb";
// Entries looked at per sweep transaction: a few milliseconds of work, so that writes queued
// behind the sweep wait no longer than that.
constexpr std::size_t kPurgeChunk = 5000;
// LMDB refuses keys above 511 bytes (its default MDB_MAXKEYSIZE).
constexpr std::size_t kMaxKey = 511;

using Clock = std::chrono::steady_clock;

std::uint64_t unix_now() { return static_cast<std::uint64_t>(std::time(nullptr)); }

std::string encode(std::uint64_t expires, std::string_view value) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((expires >> (8 * i)) & 0xff);
  out.append(value);
  return out;
}

// false when the bytes are not one of our entries (shorter than the expiry).
bool decode(const MDB_val& v, std::uint64_t& expires, std::string_view& value) {
  if (v.mv_size < 8) return false;
  const auto* p = static_cast<const unsigned char*>(v.mv_data);
  expires = 0;
  for (int i = 0; i < 8; ++i) expires |= static_cast<std::uint64_t>(p[i]) << (8 * i);
  value = std::string_view(reinterpret_cast<const char*>(p) + 8, v.mv_size - 8);
  return true;
}

bool live(std::uint64_t expires, std::uint64_t now) { return expires == 0 || expires > now; }

std::uint64_t expiry_for(std::uint32_t ttl, std::uint64_t now) { return ttl == 0 ? 0 : now + ttl; }

std::string lmdb_error(const char* what, int rc) { return std::string(what) + ": " + mdb_strerror(rc); }

}  // namespace

// ---- the environment and its writer thread ------------------------------------------------------

class LmdbEnvironment {
 public:
  struct Write {
    Op op = Op::Set;
    std::string key, value;
    std::uint32_t ttl = 0;
    std::shared_ptr<CompletionQueue> reply_to;  // null: nobody waits
    Callback done;
    Clock::time_point started;
  };

  LmdbEnvironment(const config::LmdbStoreConfig& config) : config_(config) {
    // One level made when missing (a systemd StateDirectory= normally exists already).
    if (::mkdir(config.path.c_str(), 0750) != 0 && errno != EEXIST)
      throw config::ConfigError("store.lmdb.path: cannot create " + config.path + ": " + std::strerror(errno));
    int rc = mdb_env_create(&env_);
    if (rc == 0) rc = mdb_env_set_mapsize(env_, config.map_size);
    // Each loop store holds one reader slot; 126 (the default) would cap the workers.
    if (rc == 0) rc = mdb_env_set_maxreaders(env_, 1024);
    // NOTLS: read transactions belong to loop stores, not to threads' TLS slots (a loop store
    // is only ever used on its loop's thread, but it outlives no thread-local assumption).
    if (rc == 0) rc = mdb_env_open(env_, config.path.c_str(), MDB_NOSYNC | MDB_NOTLS, 0640);
    if (rc != 0) {
      std::string why = mdb_strerror(rc);
      if (env_) mdb_env_close(env_);
      env_ = nullptr;
      throw config::ConfigError("store.lmdb.path: cannot open LMDB environment " + config.path + ": " + why);
    }
    int dead = 0;
    mdb_reader_check(env_, &dead);  // slots left by a process that was killed
    MDB_txn* txn = nullptr;
    rc = mdb_txn_begin(env_, nullptr, 0, &txn);
    if (rc == 0) rc = mdb_dbi_open(txn, nullptr, 0, &dbi_);
    if (rc == 0) rc = mdb_txn_commit(txn);
    else if (txn) mdb_txn_abort(txn);
    if (rc != 0) {
      mdb_env_close(env_);
      env_ = nullptr;
      throw config::ConfigError("store.lmdb.path: cannot open the database in " + config.path + ": " + mdb_strerror(rc));
    }
    log::info("state store opened", {{"backend", "lmdb"}, {"path", config.path}, {"stale_readers_cleared", dead}});
    writer_ = std::thread([this] { run_writer(); });
  }

  ~LmdbEnvironment() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    if (writer_.joinable()) writer_.join();
    mdb_env_sync(env_, 1);
    mdb_env_close(env_);
  }

  MDB_env* env() const { return env_; }
  MDB_dbi dbi() const { return dbi_; }

  void submit(Write w) {
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(std::move(w));
    }
    wake_.notify_one();
  }

  std::size_t entry_count() const {
    MDB_txn* txn = nullptr;
    if (mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn) != 0) return 0;
    MDB_stat st{};
    mdb_stat(txn, dbi_, &st);
    mdb_txn_abort(txn);
    return st.ms_entries;
  }

 private:
  void run_writer() {
    auto next_sync = Clock::now() + config_.sync_interval;
    auto next_purge = Clock::now() + config_.purge_interval;
    bool dirty = false;
    bool purging = false;
    std::string purge_from;  // the sweep resumes after this key
    std::vector<Write> batch;
    for (;;) {
      bool stop = false;
      {
        std::unique_lock lock(mutex_);
        auto until = dirty ? std::min(next_sync, next_purge) : next_purge;
        if (!purging)
          wake_.wait_until(lock, until, [&] { return stopping_ || !queue_.empty(); });
        stop = stopping_;
        batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
        queue_.clear();
      }
      if (!batch.empty()) {
        apply(batch);
        dirty = true;
        batch.clear();
      }
      auto now = Clock::now();
      if (!purging && now >= next_purge) {
        purging = true;
        purge_from.clear();
      }
      if (purging) {
        if (purge_chunk(purge_from)) dirty = true;
        if (purge_from.empty()) {  // reached the end
          purging = false;
          next_purge = Clock::now() + config_.purge_interval;
        }
      }
      if (dirty && (stop || Clock::now() >= next_sync)) {
        mdb_env_sync(env_, 1);
        dirty = false;
        next_sync = Clock::now() + config_.sync_interval;
      }
      if (stop) {
        std::lock_guard lock(mutex_);
        if (queue_.empty()) return;
      }
    }
  }

  // One write transaction for the whole batch; every answer posted after the commit (an answer
  // before it could be undone by a failing commit).
  void apply(std::vector<Write>& batch) {
    std::vector<Result> results(batch.size());
    MDB_txn* txn = nullptr;
    int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
    std::uint64_t now = unix_now();
    if (rc == 0) {
      for (std::size_t i = 0; i < batch.size(); ++i) results[i] = apply_one(txn, batch[i], now);
      rc = mdb_txn_commit(txn);
    }
    if (rc != 0) {
      std::string detail = lmdb_error("commit", rc);
      for (auto& r : results) r = Result::fail("lmdb", detail);
      log::error("state store write failed", {{"backend", "lmdb"}, {"path", config_.path}, {"error", detail}});
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
      Write& w = batch[i];
      if (!w.reply_to) continue;
      w.reply_to->post([done = std::move(w.done), result = std::move(results[i]), op = w.op, started = w.started]() mutable {
        record_latency(kBackend, op, Clock::now() - started);
        if (result.failed()) record_error(kBackend, result.error);
        if (done) done(std::move(result));
      });
    }
  }

  Result apply_one(MDB_txn* txn, Write& w, std::uint64_t now) {
    MDB_val k{w.key.size(), w.key.data()};
    std::string bytes;
    Result r = Result::ok();
    if (w.op == Op::Increment) {
      std::int64_t count = 0;
      MDB_val old{};
      std::uint64_t expires = 0;
      std::string_view value;
      if (mdb_get(txn, dbi_, &k, &old) == 0 && decode(old, expires, value) && live(expires, now)) {
        // Our own counts are decimal; anything else starts again from 0.
        std::int64_t v = 0;
        bool digits = !value.empty() && value.size() < 19;
        for (char c : value) {
          if (c < '0' || c > '9') digits = false;
          else v = v * 10 + (c - '0');
        }
        if (digits) count = v;
      }
      r.count = count + 1;
      bytes = encode(expiry_for(w.ttl, now), std::to_string(r.count));
    } else {
      bytes = encode(expiry_for(w.ttl, now), w.value);
    }
    MDB_val v{bytes.size(), bytes.data()};
    int rc = mdb_put(txn, dbi_, &k, &v, 0);
    if (rc != 0) return Result::fail("lmdb", lmdb_error("put", rc));
    return r;
  }

  // Deletes expired entries from `from` on, at most kPurgeChunk looked at; `from` becomes the key
  // to resume after, or empty at the end. True when anything was deleted.
  bool purge_chunk(std::string& from) {
    MDB_txn* txn = nullptr;
    if (mdb_txn_begin(env_, nullptr, 0, &txn) != 0) {
      from.clear();
      return false;
    }
    MDB_cursor* cur = nullptr;
    if (mdb_cursor_open(txn, dbi_, &cur) != 0) {
      mdb_txn_abort(txn);
      from.clear();
      return false;
    }
    std::uint64_t now = unix_now();
    MDB_val k{from.size(), from.data()}, v{};
    int rc = from.empty() ? mdb_cursor_get(cur, &k, &v, MDB_FIRST) : mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    std::size_t seen = 0, deleted = 0;
    std::string next;
    while (rc == 0) {
      if (++seen > kPurgeChunk) {
        next.assign(static_cast<const char*>(k.mv_data), k.mv_size);
        break;
      }
      std::uint64_t expires = 0;
      std::string_view value;
      if (decode(v, expires, value) && !live(expires, now)) {
        if (mdb_cursor_del(cur, 0) == 0) ++deleted;
      }
      rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (mdb_txn_commit(txn) != 0) deleted = 0;
    from = std::move(next);
    if (deleted > 0) log::debug("state store swept", {{"backend", "lmdb"}, {"expired", deleted}});
    return deleted > 0;
  }

  const config::LmdbStoreConfig config_;
  MDB_env* env_ = nullptr;
  MDB_dbi dbi_ = 0;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Write> queue_;
  bool stopping_ = false;
  std::thread writer_;
};

// ---- one loop's store ---------------------------------------------------------------------------

namespace {

class LmdbLoopStore final : public LoopStore {
 public:
  LmdbLoopStore(std::shared_ptr<LmdbEnvironment> env, std::shared_ptr<CompletionQueue> queue)
      : env_(std::move(env)), queue_(std::move(queue)) {}

  void get(const std::string& key, Callback done) override {
    auto started = Clock::now();
    Result r = read(key);
    if (r.failed()) record_error(kBackend, r.error);
    queue_->post([done = std::move(done), r = std::move(r), started]() mutable {
      record_latency(kBackend, Op::Get, Clock::now() - started);
      if (done) done(std::move(r));
    });
  }

  void set(const std::string& key, const std::string& value, std::uint32_t ttl, Callback done) override {
    write(Op::Set, key, value, ttl, std::move(done));
  }

  void increment(const std::string& key, std::uint32_t ttl, Callback done) override {
    write(Op::Increment, key, {}, ttl, std::move(done));
  }

  void close() override {
    queue_->close();
    if (txn_) mdb_txn_abort(txn_);
    txn_ = nullptr;
    delete this;  // no handle of its own: the queue's closes by itself
  }

 private:
  void write(Op op, const std::string& key, const std::string& value, std::uint32_t ttl, Callback done) {
    if (key.empty() || key.size() > kMaxKey) {
      queue_->post([done = std::move(done)] {
        if (done) done(Result::fail("key", "key length out of 1..511"));
      });
      return;
    }
    LmdbEnvironment::Write w;
    w.op = op;
    w.key = key;
    w.value = value;
    w.ttl = ttl;
    w.started = Clock::now();
    if (done) {
      w.reply_to = queue_;
      w.done = std::move(done);
    }
    env_->submit(std::move(w));
  }

  Result read(const std::string& key) {
    if (key.empty() || key.size() > kMaxKey) return Result::fail("key", "key length out of 1..511");
    int rc = txn_ ? mdb_txn_renew(txn_) : mdb_txn_begin(env_->env(), nullptr, MDB_RDONLY, &txn_);
    if (rc != 0) {
      if (txn_) mdb_txn_abort(txn_);
      txn_ = nullptr;
      return Result::fail("lmdb", lmdb_error("read transaction", rc));
    }
    MDB_val k{key.size(), const_cast<char*>(key.data())}, v{};
    rc = mdb_get(txn_, env_->dbi(), &k, &v);
    Result r;
    if (rc == 0) {
      std::uint64_t expires = 0;
      std::string_view value;
      if (decode(v, expires, value) && live(expires, unix_now())) {
        r.status = Status::Ok;
        r.value.assign(value);  // copied before the reset: the map's pages may be reused after
      }
    } else if (rc != MDB_NOTFOUND) {
      r = Result::fail("lmdb", lmdb_error("get", rc));
    }
    mdb_txn_reset(txn_);  // gives up the snapshot, keeps the reader slot for the next get
    return r;
  }

  std::shared_ptr<LmdbEnvironment> env_;
  std::shared_ptr<CompletionQueue> queue_;
  MDB_txn* txn_ = nullptr;
};

class LmdbService final : public StoreService {
 public:
  LmdbService(std::shared_ptr<LmdbEnvironment> env, std::chrono::milliseconds linger)
      : StoreService(linger), env_(std::move(env)) {}
  std::string_view backend() const override { return kBackend; }
  LmdbEnvironment& environment() { return *env_; }

 protected:
  LoopStore* make_loop_store(uv_loop_t* loop) override {
    return new LmdbLoopStore(env_, CompletionQueue::open(loop));
  }

 private:
  std::shared_ptr<LmdbEnvironment> env_;
};

}  // namespace

std::shared_ptr<StoreService> open_lmdb_service(const config::LmdbStoreConfig& config, std::chrono::milliseconds linger) {
  return std::make_shared<LmdbService>(std::make_shared<LmdbEnvironment>(config), linger);
}

std::size_t lmdb_entry_count(StoreService& service) {
  auto* s = dynamic_cast<LmdbService*>(&service);
  return s ? s->environment().entry_count() : 0;
}

}  // namespace dotgate::store
