// Unit tests for lib/lookup/profile_cache: TTL and negative TTL on an injected clock, zero TTLs,
// errors never kept, case-insensitive keys, the least recently used entry evicted when full.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>

#include "lib/lookup/profile_cache.h"

using dotgate::lookup::ProfileAnswer;
using dotgate::lookup::ProfileCache;
using namespace std::chrono_literals;

namespace {
struct FakeClock {
  std::uint64_t now = 1000;
  ProfileCache::Clock fn() {
    return [this] { return now; };
  }
};
bool is_profile(const std::optional<ProfileAnswer>& a, const std::string& name) {
  return a && a->kind == ProfileAnswer::Kind::Profile && a->profile == name;
}
bool is_none(const std::optional<ProfileAnswer>& a) { return a && a->kind == ProfileAnswer::Kind::None; }
}  // namespace

TEST_CASE("cache: a profile lives ttl, a none lives negative_ttl") {
  FakeClock clock;
  ProfileCache cache(300s, 60s, 100, clock.fn());
  CHECK_FALSE(cache.get("a@x"));
  cache.put("a@x", ProfileAnswer::named("strict"));
  cache.put("b@x", ProfileAnswer::none());
  CHECK(is_profile(cache.get("a@x"), "strict"));
  CHECK(is_none(cache.get("b@x")));
  clock.now += 59'999;
  CHECK(is_none(cache.get("b@x")));
  clock.now += 1;  // 60 s: gone
  CHECK_FALSE(cache.get("b@x"));
  CHECK(is_profile(cache.get("a@x"), "strict"));
  clock.now = 1000 + 299'999;
  CHECK(is_profile(cache.get("a@x"), "strict"));  // a hit does not extend the life
  clock.now += 1;
  CHECK_FALSE(cache.get("a@x"));
  CHECK(cache.size() == 0);  // expired entries go when looked at
}

TEST_CASE("cache: errors are never kept; a new answer replaces the old one") {
  FakeClock clock;
  ProfileCache cache(300s, 60s, 100, clock.fn());
  cache.put("a@x", ProfileAnswer::failed("timeout"));
  CHECK_FALSE(cache.get("a@x"));
  CHECK(cache.size() == 0);
  cache.put("a@x", ProfileAnswer::named("strict"));
  clock.now += 100'000;
  cache.put("a@x", ProfileAnswer::none());
  CHECK(is_none(cache.get("a@x")));
  CHECK(cache.size() == 1);
  clock.now += 60'000;
  CHECK_FALSE(cache.get("a@x"));  // the none's 60 s, not what was left of the profile's 300 s
  // An error after an answer leaves the answer in place (it is simply not kept).
  cache.put("b@x", ProfileAnswer::named("open"));
  cache.put("b@x", ProfileAnswer::failed("status 500"));
  CHECK(is_profile(cache.get("b@x"), "open"));
}

TEST_CASE("cache: a zero ttl keeps nothing of that kind") {
  FakeClock clock;
  ProfileCache no_positive(0s, 60s, 100, clock.fn());
  no_positive.put("a@x", ProfileAnswer::named("strict"));
  no_positive.put("b@x", ProfileAnswer::none());
  CHECK_FALSE(no_positive.get("a@x"));
  CHECK(is_none(no_positive.get("b@x")));
  ProfileCache no_negative(300s, 0s, 100, clock.fn());
  no_negative.put("a@x", ProfileAnswer::named("strict"));
  no_negative.put("b@x", ProfileAnswer::none());
  CHECK(is_profile(no_negative.get("a@x"), "strict"));
  CHECK_FALSE(no_negative.get("b@x"));
  CHECK(no_negative.size() == 1);
}

TEST_CASE("cache: the key is the address in ASCII lower case") {
  FakeClock clock;
  ProfileCache cache(300s, 60s, 100, clock.fn());
  cache.put("Alice@Example.COM", ProfileAnswer::named("strict"));
  CHECK(is_profile(cache.get("alice@example.com"), "strict"));
  CHECK(is_profile(cache.get("ALICE@EXAMPLE.COM"), "strict"));
  CHECK(ProfileCache::key("Jos\xC3\x89@X") == "jos\xC3\x89@x");  // only ASCII is folded
  CHECK(cache.size() == 1);
}

TEST_CASE("cache: when full, the least recently used entry goes") {
  FakeClock clock;
  ProfileCache cache(300s, 60s, 3, clock.fn());
  cache.put("a@x", ProfileAnswer::named("strict"));
  cache.put("b@x", ProfileAnswer::named("strict"));
  cache.put("c@x", ProfileAnswer::none());
  CHECK(cache.get("a@x"));  // a is now the most recent: b is the oldest
  cache.put("d@x", ProfileAnswer::named("open"));
  CHECK(cache.size() == 3);
  CHECK_FALSE(cache.get("b@x"));
  CHECK(cache.get("a@x"));
  CHECK(cache.get("c@x"));
  CHECK(cache.get("d@x"));
  // Replacing an entry that is there evicts nothing.
  cache.put("c@x", ProfileAnswer::named("strict"));
  CHECK(cache.size() == 3);
  CHECK(cache.get("a@x"));
  CHECK(cache.get("d@x"));
  // Many more than fit: the size stays bounded and the last ones are there.
  for (int i = 0; i < 1000; ++i) {
    std::string key = "r";  // appended: `"r" + std::string&&` trips GCC 12's -Wrestrict at -O3
    key += std::to_string(i);
    key += "@x";
    cache.put(key, ProfileAnswer::named("open"));
  }
  CHECK(cache.size() == 3);
  CHECK(cache.get("r999@x"));
  CHECK(cache.get("r997@x"));
  CHECK_FALSE(cache.get("r996@x"));
}

TEST_CASE("cache: max_entries 1") {
  FakeClock clock;
  ProfileCache cache(300s, 60s, 1, clock.fn());
  cache.put("a@x", ProfileAnswer::named("strict"));
  cache.put("b@x", ProfileAnswer::none());
  CHECK_FALSE(cache.get("a@x"));
  CHECK(is_none(cache.get("b@x")));
}
