// lib/spool/spool.cc — see spool.h.
#include "lib/spool/spool.h"

#include "lib/spool/temp_file.h"

#include <cerrno>
#include <cstdlib>
#include <fcntl.h>
#include <unistd.h>

namespace dotgate::spool {

Spool::~Spool() { reset(); }

void Spool::reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  memory_.clear();
  if (memory_.capacity() > threshold_) memory_.shrink_to_fit();
  size_ = 0;
  failed_ = false;
}

bool Spool::spill() {
  int fd = open_unlinked_temp(directory_);
  if (fd < 0) return false;
  if (!write_all(fd, memory_)) {
    ::close(fd);
    return false;
  }
  fd_ = fd;
  memory_.clear();
  memory_.shrink_to_fit();
  return true;
}

bool Spool::append(std::string_view bytes) {
  if (failed_) return false;
  size_ += bytes.size();
  if (fd_ < 0) {
    if (memory_.size() + bytes.size() <= threshold_) {
      memory_.append(bytes);
      return true;
    }
    if (!spill()) {
      failed_ = true;
      return false;
    }
  }
  if (!write_all(fd_, bytes)) {
    failed_ = true;
    return false;
  }
  return true;
}

std::string Spool::read_all() const {
  if (fd_ < 0) return memory_;
  std::string out;
  out.resize(size_);
  std::size_t done = 0;
  while (done < out.size()) {
    ssize_t r = ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(done));
    if (r <= 0) {
      if (r < 0 && errno == EINTR) continue;
      out.resize(done);
      break;
    }
    done += static_cast<std::size_t>(r);
  }
  return out;
}

}  // namespace dotgate::spool
