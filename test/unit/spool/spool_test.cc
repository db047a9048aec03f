// Unit tests for lib/spool: memory below the threshold, an unlinked file above it, content intact.
#include <doctest/doctest.h>

#include <string>
#include <sys/stat.h>

#include "lib/spool/spool.h"

using dotgate::spool::Spool;

TEST_CASE("small messages stay in memory") {
  Spool s(100, "/tmp");
  CHECK(s.append("hello\r\n"));
  CHECK(s.append("world\r\n"));
  CHECK_FALSE(s.in_file());
  CHECK(s.size() == 14);
  CHECK(s.read_all() == "hello\r\nworld\r\n");
}

TEST_CASE("above the threshold the content moves to an unlinked file, byte for byte") {
  Spool s(64, "/tmp");
  std::string expected;
  for (int i = 0; i < 1000; ++i) {
    std::string line = "line " + std::to_string(i) + " \x01\xff..\r\n";
    CHECK(s.append(line));
    expected += line;
  }
  CHECK(s.in_file());
  struct stat st {};
  REQUIRE(fstat(s.fd(), &st) == 0);
  CHECK(st.st_nlink == 0);  // nothing on disk survives a crash
  CHECK(s.size() == expected.size());
  CHECK(s.read_all() == expected);
  s.reset();
  CHECK_FALSE(s.in_file());
  CHECK(s.size() == 0);
  CHECK(s.append("again"));
  CHECK(s.read_all() == "again");
}

TEST_CASE("a spool directory that cannot hold files fails the spool, not the process") {
  Spool s(4, "/nonexistent-dotgate-dir");
  CHECK(s.append("abc"));
  CHECK_FALSE(s.append("defgh"));
  CHECK(s.failed());
  CHECK_FALSE(s.append("x"));
}
