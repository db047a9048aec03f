// proxy/quarantine_writer.cc — see quarantine_writer.h.
#include "proxy/quarantine_writer.h"

#include "lib/log/log.h"
#include "lib/smtp/data_stream.h"

namespace dotgate::proxy {

QuarantineWrite* QuarantineWrite::start(uv_loop_t* loop, quarantine::Quarantine quarantine, quarantine::Record record,
                                        std::shared_ptr<const spool::Spool> spool, Done done) {
  auto* w = new QuarantineWrite(std::move(quarantine), std::move(record), std::move(spool), std::move(done));
  w->req_.data = w;
  // uv_queue_work fails only for a null work callback (UV_EINVAL).
  uv_queue_work(loop, &w->req_, &QuarantineWrite::work, &QuarantineWrite::after_work);
  return w;
}

void QuarantineWrite::work(uv_work_t* req) {
  auto* w = static_cast<QuarantineWrite*>(req->data);
  if (w->spool_->failed()) {
    w->error_ = "spool unreadable";
    return;
  }
  w->ok_ = w->quarantine_.store(w->record_, smtp::unstuff(w->spool_->read_all()), w->error_);
}

void QuarantineWrite::after_work(uv_work_t* req, int status) {
  std::unique_ptr<QuarantineWrite> w(static_cast<QuarantineWrite*>(req->data));
  if (status != 0 && w->error_.empty()) w->error_ = uv_strerror(status);
  bool ok = status == 0 && w->ok_;
  if (w->done_) {
    w->done_(ok, w->error_);
  } else {
    // The session closed while the copy was written: the log is the only one left to tell.
    if (ok)
      log::info("message quarantined after the client left", {{"id", w->record_.id}, {"client", w->record_.client}});
    else
      log::error("quarantine failed after the client left", {{"id", w->record_.id}, {"error", w->error_}});
  }
}

}  // namespace dotgate::proxy
