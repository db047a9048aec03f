// lib/store/redis_store.cc — see redis_store.h.
#include "lib/store/redis_store.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libuv.h>

#include <deque>
#include <string>
#include <vector>

#include "lib/log/log.h"
#include "lib/store/completion_queue.h"
#include "lib/store/store_metrics.h"

namespace dotgate::store {

namespace {

constexpr std::string_view kBackend = "redis";
using Clock = std::chrono::steady_clock;

// INCR then EXPIRE in one atomic step and one round trip.
constexpr const char* kIncrementScript =
    "local n = redis.call('INCR', KEYS[1]) redis.call('EXPIRE', KEYS[1], ARGV[1]) return n";

class RedisLoopStore;

// One command waiting for its answer; the privdata of its hiredis callback.
struct Pending {
  RedisLoopStore* store = nullptr;  // null once the store closed: the answer goes nowhere
  Op op = Op::Get;
  Callback done;
  Clock::time_point started;
  bool internal = false;  // AUTH / SELECT: answers nobody waits for
};

class RedisLoopStore final : public LoopStore {
 public:
  RedisLoopStore(uv_loop_t* loop, const config::RedisStoreConfig& config, std::shared_ptr<CompletionQueue> queue)
      : loop_(loop), config_(config), queue_(std::move(queue)) {
    uv_timer_init(loop_, &timer_);
    timer_.data = this;
  }

  void get(const std::string& key, Callback done) override {
    std::string k = config_.prefix + key;
    command(Op::Get, {"GET", k}, std::move(done));
  }
  void set(const std::string& key, const std::string& value, std::uint32_t ttl, Callback done) override {
    std::string k = config_.prefix + key;
    if (ttl == 0) command(Op::Set, {"SET", k, value}, std::move(done));
    else command(Op::Set, {"SET", k, value, "EX", std::to_string(ttl)}, std::move(done));
  }
  void increment(const std::string& key, std::uint32_t ttl, Callback done) override {
    std::string k = config_.prefix + key;
    // EXPIRE 0 would delete the key at once: "no expiry" is a large one instead.
    command(Op::Increment, {"EVAL", kIncrementScript, "1", k, std::to_string(ttl == 0 ? 315360000u : ttl)},
            std::move(done));
  }

  void close() override {
    closed_ = true;
    queue_->close();
    for (Pending* p : in_flight_) p->store = nullptr;  // hiredis still calls them, into nothing
    in_flight_.clear();
    if (ctx_) {
      redisAsyncContext* c = ctx_;
      ctx_ = nullptr;
      c->data = nullptr;
      redisAsyncFree(c);  // calls every callback with no reply, then closes its poll handle
    }
    uv_timer_stop(&timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), [](uv_handle_t* h) { delete static_cast<RedisLoopStore*>(h->data); });
  }

 private:
  enum class State { Idle, Connecting, Connected, Waiting };  // Waiting: before the next attempt

  void command(Op op, std::vector<std::string> args, Callback done) {
    if (state_ == State::Waiting && Clock::now() >= retry_at_) connect();
    if (state_ == State::Idle) connect();
    if (!ctx_) return fail_now(op, std::move(done), "unavailable", last_error_);
    send(op, args, std::move(done), false);
  }

  void send(Op op, const std::vector<std::string>& args, Callback done, bool internal) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* p = new Pending{this, op, std::move(done), Clock::now(), internal};
    if (redisAsyncCommandArgv(ctx_, &RedisLoopStore::on_reply, p, static_cast<int>(argv.size()), argv.data(),
                              lens.data()) != REDIS_OK) {
      Callback d = std::move(p->done);
      delete p;
      if (!internal) fail_now(op, std::move(d), "unavailable", "command refused by hiredis");
      return;
    }
    in_flight_.push_back(p);
    arm_timer();
  }

  void fail_now(Op op, Callback done, const char* error, const std::string& detail) {
    auto started = Clock::now();
    queue_->post([done = std::move(done), op, started, error = std::string(error), detail]() mutable {
      record_latency(kBackend, op, Clock::now() - started);
      record_error(kBackend, error);
      if (done) done(Result::fail(error, detail));
    });
  }

  void connect() {
    redisAsyncContext* c = redisAsyncConnect(config_.address.c_str(), config_.port);
    if (c == nullptr || c->err) {
      last_error_ = c ? c->errstr : "out of memory";
      if (c) redisAsyncFree(c);
      wait_to_retry();
      return;
    }
    c->data = this;
    if (redisLibuvAttach(c, loop_) != REDIS_OK) {
      last_error_ = "cannot attach to the event loop";
      redisAsyncFree(c);
      wait_to_retry();
      return;
    }
    redisAsyncSetConnectCallback(c, &RedisLoopStore::on_connect);
    redisAsyncSetDisconnectCallback(c, &RedisLoopStore::on_disconnect);
    ctx_ = c;
    ctx_connected_ = false;
    state_ = State::Connecting;
    connect_started_ = Clock::now();
    // Queued ahead of everything else on this connection, so they are answered first.
    if (!config_.password.empty()) send(Op::Get, {"AUTH", config_.password}, nullptr, true);
    if (config_.database != 0) send(Op::Get, {"SELECT", std::to_string(config_.database)}, nullptr, true);
    arm_timer();
  }

  void wait_to_retry() {
    ctx_ = nullptr;
    state_ = State::Waiting;
    retry_at_ = Clock::now() + config_.reconnect_interval;
    if (!reported_down_) {
      reported_down_ = true;
      log::warn("state store unreachable", {{"backend", "redis"}, {"address", config_.address}, {"port", config_.port},
                                            {"error", last_error_}});
    }
  }

  // One timer for both deadlines: the connect, and the oldest command in flight.
  void arm_timer() {
    if (closed_) return;
    Clock::time_point due = Clock::time_point::max();
    if (state_ == State::Connecting) due = connect_started_ + config_.connect_timeout;
    if (!in_flight_.empty()) due = std::min(due, in_flight_.front()->started + config_.command_timeout);
    if (due == Clock::time_point::max()) {
      uv_timer_stop(&timer_);
      return;
    }
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(due - Clock::now()).count();
    uv_timer_start(&timer_, &RedisLoopStore::on_timer, static_cast<std::uint64_t>(ms < 0 ? 0 : ms) + 1, 0);
  }

  static void on_timer(uv_timer_t* t) {
    auto* s = static_cast<RedisLoopStore*>(t->data);
    auto now = Clock::now();
    bool connect_late = s->state_ == State::Connecting && now >= s->connect_started_ + s->config_.connect_timeout;
    bool command_late = !s->in_flight_.empty() && now >= s->in_flight_.front()->started + s->config_.command_timeout;
    if (command_late && !connect_late && s->ctx_ && s->state_ == State::Connected) {
      // Timers run before I/O in a loop iteration: after the loop itself was late (a long
      // callback elsewhere), the answers may be waiting in the socket. Read them before blaming
      // Redis. (This may end the connection, through on_disconnect, if Redis closed it.)
      redisAsyncHandleRead(s->ctx_);
      command_late = !s->in_flight_.empty() && now >= s->in_flight_.front()->started + s->config_.command_timeout;
    }
    if (connect_late || command_late) {
      s->drop(connect_late ? "unavailable" : "timeout", connect_late ? "connect timeout" : "command timeout");
      return;
    }
    s->arm_timer();
  }

  // Gives up the connection: everything in flight fails with `reason`.
  void drop(const char* reason, const std::string& detail) {
    drop_reason_ = reason;
    last_error_ = detail;
    redisAsyncContext* c = ctx_;
    if (c) {
      ctx_ = nullptr;
      redisAsyncFree(c);  // on_reply with no reply for each pending command (in order), on_disconnect
    }
    drop_reason_.clear();
    wait_to_retry();
    arm_timer();
  }

  static void on_connect(const redisAsyncContext* c, int status) {
    auto* s = static_cast<RedisLoopStore*>(c->data);
    if (s == nullptr) return;
    if (status != REDIS_OK) {
      // hiredis frees the context after this call and fails what was queued on it.
      s->last_error_ = c->errstr;
      s->ctx_ = nullptr;
      s->wait_to_retry();
      return;
    }
    s->state_ = State::Connected;
    s->ctx_connected_ = true;
    if (s->reported_down_) {
      s->reported_down_ = false;
      log::info("state store reachable again", {{"backend", "redis"}, {"address", s->config_.address}, {"port", s->config_.port}});
    }
    s->arm_timer();
  }

  static void on_disconnect(const redisAsyncContext* c, int status) {
    auto* s = static_cast<RedisLoopStore*>(c->data);
    if (s == nullptr) return;
    if (s->ctx_ == c) {
      s->last_error_ = status == REDIS_OK ? "closed" : c->errstr;
      s->ctx_ = nullptr;
      s->wait_to_retry();
      s->arm_timer();
    }
  }

  static void on_reply(redisAsyncContext* c, void* reply_ptr, void* privdata) {
    auto* p = static_cast<Pending*>(privdata);
    RedisLoopStore* s = p->store;
    if (s != nullptr) {
      // Answers come in the order asked, so this is the front (failed batches too).
      if (!s->in_flight_.empty() && s->in_flight_.front() == p) s->in_flight_.pop_front();
      else std::erase(s->in_flight_, p);
      Result r = s->to_result(p->op, static_cast<redisReply*>(reply_ptr), c);
      if (!p->internal) {
        s->queue_->post([done = std::move(p->done), r = std::move(r), op = p->op, started = p->started]() mutable {
          record_latency(kBackend, op, Clock::now() - started);
          if (r.failed()) record_error(kBackend, r.error);
          if (done) done(std::move(r));
        });
      } else if (r.failed() && reply_ptr != nullptr) {
        log::error("state store refused the connection setup", {{"backend", "redis"}, {"error", r.detail}});
      }
      s->arm_timer();
    }
    delete p;
  }

  Result to_result(Op op, redisReply* reply, const redisAsyncContext* c) const {
    if (reply == nullptr) {
      // A connect that failed fails what was queued on it: "unavailable", as when there is no
      // connection at all; one that dropped fails what was in flight: "disconnected".
      std::string why = !drop_reason_.empty() ? drop_reason_ : ctx_connected_ ? "disconnected" : "unavailable";
      return Result::fail(why, c && c->errstr[0] ? c->errstr : last_error_);
    }
    switch (reply->type) {
      case REDIS_REPLY_ERROR: return Result::fail("redis", std::string(reply->str, reply->len));
      case REDIS_REPLY_NIL: return op == Op::Get ? Result::missing() : Result::fail("protocol", "nil reply");
      case REDIS_REPLY_STRING:
      case REDIS_REPLY_STATUS: {
        Result r = Result::ok();
        if (op == Op::Get) r.value.assign(reply->str, reply->len);
        return r;
      }
      case REDIS_REPLY_INTEGER: {
        Result r = Result::ok();
        r.count = static_cast<std::int64_t>(reply->integer);
        return r;
      }
      default: return Result::fail("protocol", "unexpected reply type " + std::to_string(reply->type));
    }
  }

  uv_loop_t* loop_;
  const config::RedisStoreConfig config_;
  std::shared_ptr<CompletionQueue> queue_;
  uv_timer_t timer_{};
  redisAsyncContext* ctx_ = nullptr;
  State state_ = State::Idle;
  std::deque<Pending*> in_flight_;
  Clock::time_point connect_started_{};
  Clock::time_point retry_at_{};
  std::string last_error_;
  std::string drop_reason_;  // set while drop() fails the commands in flight
  bool ctx_connected_ = false;  // ctx_ (or the one being freed) got as far as connected
  bool reported_down_ = false;
  bool closed_ = false;
};

class RedisService final : public StoreService {
 public:
  RedisService(const config::RedisStoreConfig& config, std::chrono::milliseconds linger)
      : StoreService(linger), config_(config) {}
  std::string_view backend() const override { return kBackend; }

 protected:
  LoopStore* make_loop_store(uv_loop_t* loop) override {
    return new RedisLoopStore(loop, config_, CompletionQueue::open(loop));
  }

 private:
  const config::RedisStoreConfig config_;
};

}  // namespace

std::shared_ptr<StoreService> make_redis_service(const config::RedisStoreConfig& config, std::chrono::milliseconds linger) {
  return std::make_shared<RedisService>(config, linger);
}

}  // namespace dotgate::store
