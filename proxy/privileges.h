// proxy/privileges.h — becoming the configured unprivileged user after the listeners are bound.
//
// Who calls it: main(), once: resolve_account() when the config is loaded (so --check-config
// already says whether "user"/"group" exist), drop_privileges() after every listener and the
// admin port are bound (port 25 needs root, or CAP_NET_BIND_SERVICE) and before any worker thread
// runs or any client is served. What it owns: nothing; what it changes is the whole process's
// credentials, for good. A failed or partial drop is an error the caller must not survive: a
// daemon that meant to shed root and silently kept it is the worst of both.
#pragma once

#include <string>

#include <sys/types.h>

namespace dotgate::proxy {

struct Account {
  std::string user, group;  // names, for logs
  uid_t uid = 0;
  gid_t gid = 0;
};

// Looks `user` up (and `group`, or else the user's primary group). Returns an error text
// ("user \"x\" does not exist"), empty on success.
std::string resolve_account(const std::string& user, const std::string& group, Account& out);

// As root: setgroups to the one group (no supplementary groups: none are needed to serve),
// setgid, setuid; then checks that real and effective ids are the account's and that root
// cannot be regained (setuid(0) fails). Not root: succeeds only if already running as the
// account (systemd's User=, a container's USER), else says so. Returns an error text, empty on
// success.
std::string drop_privileges(const Account& account);

}  // namespace dotgate::proxy
