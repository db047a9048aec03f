// lib/quarantine/quarantine.cc — see quarantine.h. Synchronous POSIX file I/O: called on the
// session's loop at the dot (acceptable for now: FailKeep is rare and the files are one message
// each; moving it to the thread pool is a later step). Every step checks its result; any failure
// unlinks what this call created and reports false.
#include "lib/quarantine/quarantine.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <random>

#include <nlohmann/json.hpp>

namespace dotgate::quarantine {

namespace {

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

// Writes `data` to a new file at `path` (never an existing one: O_EXCL) and fsyncs it.
bool write_durable(const std::string& path, std::string_view data, std::string& error) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    error = errno_text(path);
    return false;
  }
  const char* p = data.data();
  std::size_t n = data.size();
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      error = errno_text(path);
      ::close(fd);
      return false;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  // fsync before the rename: otherwise a crash could leave the final name on an empty file.
  if (::fsync(fd) != 0) {
    error = errno_text(path);
    ::close(fd);
    return false;
  }
  if (::close(fd) != 0) {
    error = errno_text(path);
    return false;
  }
  return true;
}

bool fsync_directory(const std::string& directory, std::string& error) {
  int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    error = errno_text(directory);
    return false;
  }
  bool ok = ::fsync(fd) == 0;
  if (!ok) error = errno_text(directory);
  ::close(fd);
  return ok;
}

std::string utc_time(std::int64_t seconds, const char* format) {
  std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}

}  // namespace

std::string Quarantine::make_id() {
  static std::atomic<std::uint64_t> counter{0};
  thread_local std::mt19937_64 rng{std::random_device{}()};
  auto now = std::chrono::system_clock::now();
  auto seconds = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  char rnd[16];
  std::snprintf(rnd, sizeof rnd, "%06llx", static_cast<unsigned long long>(rng() & 0xffffff));
  return utc_time(seconds, "%Y%m%dT%H%M%SZ") + "-" + std::to_string(::getpid()) + "-" +
         std::to_string(++counter) + "-" + rnd;
}

std::int64_t Quarantine::usage() const {
  DIR* dir = ::opendir(directory_.c_str());
  if (!dir) return -1;
  std::int64_t total = 0;
  while (dirent* e = ::readdir(dir)) {
    struct stat st {};
    if (::fstatat(::dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
      total += st.st_size;
  }
  ::closedir(dir);
  return total;
}

bool Quarantine::store(const Record& record, std::string_view message, std::string& error) const {
  // The id becomes a file name: refuse anything that could leave the directory or hide a file.
  if (record.id.empty() || record.id.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != std::string::npos) {
    error = "invalid id";
    return false;
  }
  std::int64_t when = record.time ? record.time
                                  : std::chrono::duration_cast<std::chrono::seconds>(
                                        std::chrono::system_clock::now().time_since_epoch()).count();
  nlohmann::json doc = {
      {"id", record.id},
      {"client", record.client},
      {"helo", record.helo},
      {"sender", record.sender},
      {"recipients", record.recipients},
      {"size", record.size},
      {"reply", record.reply},
      {"reason", record.reason},
      {"time", utc_time(when, "%Y-%m-%dT%H:%M:%SZ")},
      {"message_file", record.id + ".eml"},
  };
  // replace: envelope strings come from the network and may hold invalid UTF-8.
  std::string json_text = doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";

  std::int64_t used = usage();
  if (used < 0) {
    error = errno_text(directory_);
    return false;
  }
  std::uint64_t need = message.size() + json_text.size();
  if (static_cast<std::uint64_t>(used) + need > max_bytes_) {
    error = "quarantine full (" + std::to_string(used) + " + " + std::to_string(need) + " bytes over max_bytes " +
            std::to_string(max_bytes_) + ")";
    return false;
  }

  const std::string base = directory_ + "/";
  const std::string tmp_eml = base + ".tmp-" + record.id + ".eml";
  const std::string tmp_json = base + ".tmp-" + record.id + ".json";
  const std::string eml = base + record.id + ".eml";
  const std::string json = base + record.id + ".json";
  auto undo = [&](bool eml_renamed) {
    ::unlink(tmp_eml.c_str());
    ::unlink(tmp_json.c_str());
    if (eml_renamed) ::unlink(eml.c_str());
    return false;
  };

  if (!write_durable(tmp_eml, message, error)) return undo(false);
  if (!write_durable(tmp_json, json_text, error)) return undo(false);
  if (::rename(tmp_eml.c_str(), eml.c_str()) != 0) {
    error = errno_text(eml);
    return undo(false);
  }
  // The .eml's name is durable before the .json's exists: the pair is complete on disk whenever
  // the .json is there, whatever order the filesystem would have flushed the two renames in.
  if (!fsync_directory(directory_, error)) return undo(true);
  if (::rename(tmp_json.c_str(), json.c_str()) != 0) {
    error = errno_text(json);
    return undo(true);
  }
  if (!fsync_directory(directory_, error)) {
    // The rename may or may not survive a crash; remove both so we never report a keep that
    // could vanish, and the caller tempfails (the client keeps the message).
    ::unlink(json.c_str());
    return undo(true);
  }
  return true;
}

}  // namespace dotgate::quarantine
