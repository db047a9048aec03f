// proxy/quarantine_writer.h — a fail_keep copy written on libuv's thread pool, not the loop.
//
// quarantine::Quarantine::store() writes, fsyncs and renames two files and fsyncs the directory:
// milliseconds on a quiet disk, seconds on a busy one. On a worker's loop that would stall every
// session of the worker, so a session hands the work to uv_queue_work and waits (its client still
// waits for the reply to the dot) until the result comes back on the loop.
//
// Who owns what: a QuarantineWrite owns itself from start() until its after-work callback has
// run on the loop; it holds its own reference to the spool, so the message stays readable after
// the session moved on or closed. A session that closes first calls detach(): the copy is still
// completed (the client was told nothing yet, or was told the 5xx), only the callback is dropped.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <uv.h>

#include "lib/quarantine/quarantine.h"
#include "lib/spool/spool.h"

namespace dotgate::proxy {

class QuarantineWrite {
 public:
  // ok: both files are in place and durable; otherwise error says why (full disk, over the cap).
  using Done = std::function<void(bool ok, const std::string& error)>;

  // Reads the spool (unstuffed) and stores it with `record` off the loop; `done` runs on the loop
  // thread, never inside start(). Returns the write, for detach().
  static QuarantineWrite* start(uv_loop_t* loop, quarantine::Quarantine quarantine, quarantine::Record record,
                                std::shared_ptr<const spool::Spool> spool, Done done);

  void detach() { done_ = nullptr; }

 private:
  QuarantineWrite(quarantine::Quarantine q, quarantine::Record r, std::shared_ptr<const spool::Spool> s, Done d)
      : quarantine_(std::move(q)), record_(std::move(r)), spool_(std::move(s)), done_(std::move(d)) {}
  static void work(uv_work_t* req);
  static void after_work(uv_work_t* req, int status);

  uv_work_t req_{};
  quarantine::Quarantine quarantine_;
  quarantine::Record record_;
  std::shared_ptr<const spool::Spool> spool_;
  Done done_;
  bool ok_ = false;
  std::string error_;
};

}  // namespace dotgate::proxy
