// lib/match/matcher.h — Aho–Corasick over folded UTF-8: which phrases of a word list occur, as
// whole words, how often.
//
// Pure. A Matcher is built once from (phrase, score) entries (when a config is loaded) and is
// immutable after: one instance is shared by every thread that scans, without locks. Each scan
// has its own Scan (counts and a scratch buffer), so concurrent scans never share anything
// mutable.
//
// Semantics: phrases and text are folded (fold.h: case folding, NFKC, whitespace runs as one
// space, invisible characters dropped), so matching is case-insensitive and a phrase matches
// across any run of whitespace, line breaks included. A hit counts only as a whole word: the
// character before it and the one after it must not be a letter or digit (is_word_char). Every
// occurrence counts, overlapping ones too ("online casino" and "casino" both hit in "online
// casino"). A phrase never spans two fed texts (a header and a body part are separate texts).
//
// How (why it is fast): the automaton runs over bytes of the folded text. Bytes are first mapped
// to classes (only bytes that occur in some phrase get a class of their own; all others share
// class 0), and the states nearest the root — numbered breadth first, so they come first — get a
// dense row of transitions with failures already resolved (a DFA): one table load per byte, no
// failure chasing. A transition holds the target's row offset (state x row width), so the next
// load needs no multiplication, and a flag bit that says "this state ends some phrase", so the
// hot loop tests one bit and checks boundaries only on a candidate hit. States past the dense
// budget (only for very large lists) keep sparse children and failure links. The loop is bound by
// the latency of those loads (each depends on the one before, and a large list's rows do not fit
// in L1/L2), so a long text is cut into eight slices scanned in one interleaved loop: eight
// independent chains of loads in flight instead of one (measured: 4 slices 1.15 ms, 8 slices
// 0.77 ms, 16 slices 1.05 ms — registers run out — for 850 KB against 5,000 phrases). Each slice starts scanning the longest
// phrase's length before its own start (so its state is right when it gets there) and reports
// only hits that end inside it: no hit is lost or counted twice.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dotgate::match {

struct Entry {
  std::string phrase;  // UTF-8, as written in the list
  double score = 1;
};

struct Hit {
  std::size_t entry;    // index into Matcher::entries()
  std::uint32_t count;  // occurrences
};

class Matcher {
 public:
  // Dense rows cost (1 << classes bits) x 4 bytes each; states past the budget go sparse.
  static constexpr std::size_t kDefaultDenseBudget = 32u << 20;

  // Throws std::invalid_argument when a phrase is not UTF-8 or is empty once folded (only
  // whitespace or invisible characters): it would match nothing, or everything.
  // `dense_budget` (bytes) is for tests of the sparse path; the default suits any real list.
  explicit Matcher(std::vector<Entry> entries, std::size_t dense_budget = kDefaultDenseBudget);

  const std::vector<Entry>& entries() const { return entries_; }
  std::size_t states() const { return depth_.size(); }
  std::size_t dense_states() const { return dense_count_; }

  // Counting over several texts of one message.
  class Scan {
   public:
    explicit Scan(const Matcher& matcher) : m_(matcher), counts_(matcher.entries_.size(), 0) {}
    void feed(std::string_view utf8);             // folds, then scans
    void feed_folded(std::string_view folded);    // already folded (benchmarks, tests)
    std::vector<Hit> hits() const;                // entries with a count, in entry order
    double score() const;                         // sum of count x score

   private:
    const Matcher& m_;
    std::vector<std::uint32_t> counts_;
    std::string folded_;
  };

  std::vector<Hit> match(std::string_view utf8) const;  // one text

 private:
  static constexpr std::uint32_t kOut = 0x80000000u;  // in a transition: the target ends a phrase

  // A state as the hot loop holds it: its row offset when dense, else dense_limit_ + the number
  // of states past the dense ones.
  std::uint32_t encode(std::uint32_t state) const {
    return state < dense_count_ ? state * width_ : dense_limit_ + (state - dense_count_);
  }
  std::uint32_t decode(std::uint32_t code) const {
    return code < dense_limit_ ? code / width_ : dense_count_ + (code - dense_limit_);
  }
  std::uint32_t step_sparse(std::uint32_t code, std::uint8_t c) const;
  void report(std::uint32_t code, std::string_view folded, std::size_t end, std::vector<std::uint32_t>& counts) const;
  void scan(std::string_view folded, std::vector<std::uint32_t>& counts) const;

  std::vector<Entry> entries_;
  std::vector<std::uint32_t> length_;  // folded length of each entry's phrase, bytes

  std::uint8_t classes_[256] = {};  // byte -> class; 0: no phrase has that byte
  std::uint32_t width_ = 1;         // classes, the length of a dense row
  std::uint8_t space_class_ = 0;    // class of ' ' (0 if no phrase has a space)
  std::uint32_t max_length_ = 0;    // longest folded phrase, bytes

  std::vector<std::uint32_t> dense_;  // dense_count_ rows of width_: encoded target | kOut
  std::uint32_t dense_count_ = 0;
  std::uint32_t dense_limit_ = 0;     // dense_count_ x width_

  // Every state, breadth-first order (root = 0).
  std::vector<std::uint32_t> fail_;
  std::vector<std::uint32_t> depth_;
  std::vector<std::uint8_t> after_space_;  // reached by a ' ': a further ' ' stays (runs are one)
  // Sparse children of every state, sorted by class: kid_*_[kids_begin_[s] .. kids_begin_[s+1]).
  // Used to build the dense rows, and to step from the states past them.
  std::vector<std::uint32_t> kids_begin_;
  std::vector<std::uint8_t> kid_class_;
  std::vector<std::uint32_t> kid_state_;
  // Entries ending at each state, through failure links too: out_[out_begin_[s] .. out_begin_[s+1]).
  std::vector<std::uint32_t> out_begin_;
  std::vector<std::uint32_t> out_;
};

}  // namespace dotgate::match
