// lib/quarantine/quarantine.h — keeps a refused message (fail_keep) on disk, with its envelope.
//
// Called by the session at the dot when a verdict is FailKeep and a quarantine is configured.
// store() writes two files into the directory: `<id>.eml` (the message, unstuffed: the RFC 5322
// text the client sent) and `<id>.json` (envelope, reply, reason, time). Each is written to
// `.tmp-<id>.*`, fsynced, then renamed; the directory is fsynced after each rename; the JSON is
// renamed last, so a `.json` present means its pair is complete. A crash mid-write leaves only
// `.tmp-*` files (never a name that looks complete). store() returns false, removing what it
// wrote, on any I/O error (full disk) or when the directory's total would pass max_bytes: the
// caller must then tempfail, never drop a message it promised to keep.
// Owns nothing between calls; the files belong to the operator once renamed.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dotgate::quarantine {

struct Record {
  std::string id;  // file name stem: letters, digits, '-' only (make_id())
  std::string client;  // "address:port", as the log lines name it
  std::string helo;
  std::string sender;
  std::vector<std::string> recipients;
  std::uint64_t size = 0;  // the message's size on the wire, as the session counted it
  std::string reply;       // what the client was told, "550 5.7.1 text"
  std::string reason;      // the policy's reason, for the log and the operator
  std::int64_t time = 0;   // Unix seconds; 0: now
};

class Quarantine {
 public:
  Quarantine(std::string directory, std::uint64_t max_bytes)
      : directory_(std::move(directory)), max_bytes_(max_bytes) {}

  // True when both files are in place and durable. On false, `error` says why.
  bool store(const Record& record, std::string_view message, std::string& error) const;

  // A fresh id: UTC time, pid and a process-wide counter plus random bits, unique across
  // workers and restarts ("20261123T024500Z-1234-1-9f3a2c").
  static std::string make_id();

  // The sum of the regular files' sizes in the directory (temporary leftovers included: they
  // use the disk too). -1 when the directory cannot be read.
  std::int64_t usage() const;

 private:
  std::string directory_;
  std::uint64_t max_bytes_;
};

}  // namespace dotgate::quarantine
