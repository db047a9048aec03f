// lib/spool/temp_file.h — unlinked temporary files and complete writes, for the spool and for
// anything that hands a message to another program (the script policy).
//
// An unlinked file leaves nothing on disk when dotgate crashes. The caller owns the returned fd.
#pragma once

#include <string>
#include <string_view>

namespace dotgate::spool {

// Opens an unlinked read-write file in `directory` (O_TMPFILE; on filesystems without it, a named
// file unlinked at once). Returns the fd, or -1 with errno set.
int open_unlinked_temp(const std::string& directory);

// write(2) until every byte is written (EINTR retried). False on any error, errno set.
bool write_all(int fd, std::string_view bytes);

}  // namespace dotgate::spool
