// proxy/privileges.cc — resolve_account and drop_privileges (see privileges.h).
//
// The order is the one that works: supplementary groups and the group first, while still root
// (after setuid the process may no longer change them), the user last. Each step is checked, and
// so is the result, since a setuid that "succeeded" with a saved set-user-ID of 0 would let code
// become root again.
#include "proxy/privileges.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace dotgate::proxy {
namespace {

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

}  // namespace

std::string resolve_account(const std::string& user, const std::string& group, Account& out) {
  long size = sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(size > 0 ? static_cast<std::size_t>(size) : 16384);
  passwd pw{};
  passwd* found = nullptr;
  int rc = getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &found);
  if (rc != 0) return "user \"" + user + "\": " + std::strerror(rc);
  if (!found) return "user \"" + user + "\" does not exist";
  Account a;
  a.user = user;
  a.uid = pw.pw_uid;
  a.gid = pw.pw_gid;
  if (!group.empty()) {
    long gsize = sysconf(_SC_GETGR_R_SIZE_MAX);
    std::vector<char> gbuf(gsize > 0 ? static_cast<std::size_t>(gsize) : 16384);
    struct group gr{};
    struct group* gfound = nullptr;
    rc = getgrnam_r(group.c_str(), &gr, gbuf.data(), gbuf.size(), &gfound);
    if (rc != 0) return "group \"" + group + "\": " + std::strerror(rc);
    if (!gfound) return "group \"" + group + "\" does not exist";
    a.gid = gr.gr_gid;
    a.group = group;
  } else {
    struct group* g = getgrgid(a.gid);
    a.group = g ? g->gr_name : std::to_string(a.gid);
  }
  out = a;
  return {};
}

std::string drop_privileges(const Account& a) {
  if (geteuid() != 0) {
    if (getuid() == a.uid && geteuid() == a.uid) return {};
    return "cannot become user \"" + a.user + "\": running as uid " + std::to_string(geteuid()) +
           ", not root (start as root, or as that user)";
  }
  if (setgroups(1, &a.gid) != 0) return errno_text("setgroups");
  if (setgid(a.gid) != 0) return errno_text("setgid");
  if (setuid(a.uid) != 0) return errno_text("setuid");
  if (getuid() != a.uid || geteuid() != a.uid || getgid() != a.gid || getegid() != a.gid)
    return "credentials after the drop are not " + a.user + ":" + a.group;
  // Root is gone for good only if it cannot be taken back (uid 0 as the target is the exception:
  // "user": "root" is allowed, and pointless).
  if (a.uid != 0 && setuid(0) == 0) return "setuid(0) still succeeds after dropping to " + a.user;
  return {};
}

}  // namespace dotgate::proxy
