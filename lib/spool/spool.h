// lib/spool/spool.h — one message body, kept for the verdict step: memory first, a file above a threshold.
//
// Owned by a Session (one per session, reset per transaction). It holds the message in wire form
// (dot-stuffed, CRLF, without the final ".\r\n"), exactly what the downstream received, so a
// verdict service can read it and a PRDR replay can resend it byte for byte. Above
// `memory_threshold` bytes the content moves to an unlinked temporary file (O_TMPFILE) in
// `directory`: nothing is left on disk after a crash, and per-session memory stays bounded
// (invariant 5). Writes are plain write(2) to the page cache; they do not wait for the disk.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dotgate::spool {

class Spool {
 public:
  Spool(std::size_t memory_threshold, std::string directory)
      : threshold_(memory_threshold), directory_(std::move(directory)) {}
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // Returns false when the file could not be created or written (disk full): the caller must
  // tempfail the message rather than judge a truncated copy.
  bool append(std::string_view bytes);
  void reset();  // empty, file closed

  std::uint64_t size() const { return size_; }
  bool in_file() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  bool failed() const { return failed_; }
  // The whole content (reads the file back when spilled). For verdict services and tests.
  std::string read_all() const;

 private:
  bool spill();
  std::size_t threshold_;
  std::string directory_;
  std::string memory_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
  bool failed_ = false;
};

}  // namespace dotgate::spool
