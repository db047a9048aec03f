// Unit tests for proxy/open_files_limit: what a config needs, when the warning is said, and the
// raise itself (in this test process: a soft limit lowered first comes back up to the hard one).
#include <doctest/doctest.h>

#include <sys/resource.h>

#include "proxy/open_files_limit.h"

using namespace dotgate;

TEST_CASE("two descriptors per allowed connection, the pool's, and a margin of 100") {
  config::Config c;
  c.smtp.max_connections = 10000;
  CHECK(proxy::open_files_needed(c, 1) == 20100);
  c.downstream.pool_size = 20;
  CHECK(proxy::open_files_needed(c, 2) == 20140);
}

TEST_CASE("the warning: only when the limit is below the need, and it names both") {
  config::Config c;
  c.smtp.max_connections = 1000;
  CHECK(proxy::open_files_warning(c, 1, 2100).empty());
  CHECK(proxy::open_files_warning(c, 1, 65536).empty());
  CHECK(proxy::open_files_warning(c, 1, 0).empty());  // unknown: nothing said
  std::string w = proxy::open_files_warning(c, 1, 2099);
  CHECK(w.find("open files limit 2099 is below the 2100 that smtp.max_connections 1000 needs") == 0);
  CHECK(w.find("LimitNOFILE") != std::string::npos);
}

TEST_CASE("the soft limit is raised to the hard one") {
  rlimit before{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &before) == 0);
  if (before.rlim_max != RLIM_INFINITY && before.rlim_max <= 64) return;  // nothing to show
  rlimit low = before;
  low.rlim_cur = 64;
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
  proxy::OpenFilesLimit got = proxy::raise_open_files_limit();
  CHECK(got.error == 0);
  CHECK(got.soft_before == 64);
  CHECK(got.hard == before.rlim_max);
  if (before.rlim_max != RLIM_INFINITY) CHECK(got.soft == before.rlim_max);
  CHECK(proxy::current_open_files_limit() == got.soft);
  proxy::OpenFilesLimit again = proxy::raise_open_files_limit();  // already there: nothing changes
  CHECK(again.soft_before == again.soft);
  ::setrlimit(RLIMIT_NOFILE, &before);
}
