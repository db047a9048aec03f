// lib/match/matcher.cc — see matcher.h. Build: fold the phrases, give their bytes classes, build
// the trie, renumber it breadth first, compute failure links and output lists, then the dense
// rows. Scan: one class lookup and one table load per byte; boundaries only on candidate hits.
#include "lib/match/matcher.h"

#include <glib.h>

#include <algorithm>
#include <deque>
#include <stdexcept>

#include "lib/match/fold.h"

namespace dotgate::match {

namespace {

// Below this many folded bytes a text is scanned as one slice: the warm-up of the other
// slices would cost more than the overlap of their loads saves.
constexpr std::size_t kSliceMinimum = 4096;
constexpr std::size_t kSlices = 8;

std::string trim_spaces(std::string s) {
  std::size_t b = s.find_first_not_of(' ');
  if (b == std::string::npos) return {};
  std::size_t e = s.find_last_not_of(' ');
  return s.substr(b, e - b + 1);
}

// The trie while it is built: sparse children, entries ending here.
struct BuildNode {
  std::vector<std::pair<std::uint8_t, std::uint32_t>> kids;  // class, node
  std::vector<std::uint32_t> own;
};

}  // namespace

Matcher::Matcher(std::vector<Entry> entries, std::size_t dense_budget) : entries_(std::move(entries)) {
  // Fold every phrase exactly as the text will be folded.
  std::vector<std::string> folded;
  folded.reserve(entries_.size());
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    const std::string& p = entries_[i].phrase;
    if (!g_utf8_validate(p.data(), static_cast<gssize>(p.size()), nullptr))
      throw std::invalid_argument("entry " + std::to_string(i + 1) + ": not UTF-8");
    std::string f = trim_spaces(fold(p));
    if (f.empty()) throw std::invalid_argument("entry " + std::to_string(i + 1) + ": empty phrase");
    length_.push_back(static_cast<std::uint32_t>(f.size()));
    folded.push_back(std::move(f));
  }

  // Byte classes.
  bool used[256] = {};
  for (const auto& f : folded)
    for (char c : f) used[static_cast<unsigned char>(c)] = true;
  unsigned classes = 1;
  for (int b = 0; b < 256; ++b)
    if (used[b]) classes_[b] = static_cast<std::uint8_t>(classes++);
  width_ = classes;
  space_class_ = classes_[static_cast<unsigned char>(' ')];
  for (std::uint32_t len : length_) max_length_ = std::max(max_length_, len);

  // The trie, in insertion order.
  std::vector<BuildNode> nodes(1);
  for (std::size_t i = 0; i < folded.size(); ++i) {
    std::uint32_t s = 0;
    for (char ch : folded[i]) {
      std::uint8_t c = classes_[static_cast<unsigned char>(ch)];
      auto& kids = nodes[s].kids;
      auto it = std::find_if(kids.begin(), kids.end(), [c](const auto& k) { return k.first == c; });
      if (it != kids.end()) {
        s = it->second;
      } else {
        auto next = static_cast<std::uint32_t>(nodes.size());
        nodes[s].kids.emplace_back(c, next);
        nodes.emplace_back();
        s = next;
      }
    }
    nodes[s].own.push_back(static_cast<std::uint32_t>(i));
  }

  // Encoded states and the kOut flag share 32 bits.
  if (nodes.size() >= (1u << 30)) throw std::invalid_argument("word lists too large");

  // Breadth-first renumbering: shallow states first (they get the dense rows), and a failure
  // link always points to a smaller number (it is a shorter string), so one pass in order
  // computes failures, outputs and dense rows.
  const std::size_t n = nodes.size();
  std::vector<std::uint32_t> order;  // new number -> old
  std::vector<std::uint32_t> renumber(n);
  std::vector<std::uint32_t> parent(n, 0);
  std::vector<std::uint8_t> incoming(n, 0);
  order.reserve(n);
  order.push_back(0);
  for (std::size_t head = 0; head < order.size(); ++head) {
    auto& kids = nodes[order[head]].kids;
    std::sort(kids.begin(), kids.end());
    for (const auto& [c, child] : kids) {
      parent[order.size()] = static_cast<std::uint32_t>(head);
      incoming[order.size()] = c;
      order.push_back(child);
    }
  }
  for (std::size_t s = 0; s < n; ++s) renumber[order[s]] = static_cast<std::uint32_t>(s);

  kids_begin_.reserve(n + 1);
  depth_.assign(n, 0);
  after_space_.assign(n, 0);
  for (std::size_t s = 0; s < n; ++s) {
    kids_begin_.push_back(static_cast<std::uint32_t>(kid_class_.size()));
    for (const auto& [c, child] : nodes[order[s]].kids) {
      kid_class_.push_back(c);
      kid_state_.push_back(renumber[child]);
    }
    if (s > 0) {
      depth_[s] = depth_[parent[s]] + 1;
      after_space_[s] = space_class_ != 0 && incoming[s] == space_class_;
    }
  }
  kids_begin_.push_back(static_cast<std::uint32_t>(kid_class_.size()));

  auto go = [this](std::uint32_t s, std::uint8_t c) -> std::int64_t {
    auto b = kid_class_.begin() + kids_begin_[s], e = kid_class_.begin() + kids_begin_[s + 1];
    auto it = std::lower_bound(b, e, c);
    if (it == e || *it != c) return -1;
    return kid_state_[static_cast<std::size_t>(it - kid_class_.begin())];
  };

  // Failure links and output lists (own entries, then those of the failure state).
  fail_.assign(n, 0);
  out_begin_.reserve(n + 1);
  for (std::size_t s = 0; s < n; ++s) {
    if (s > 0 && parent[s] != 0) {
      std::uint32_t f = fail_[parent[s]];
      for (;;) {
        std::int64_t g = go(f, incoming[s]);
        if (g >= 0) {
          fail_[s] = static_cast<std::uint32_t>(g);
          break;
        }
        if (f == 0) break;
        f = fail_[f];
      }
    }
    out_begin_.push_back(static_cast<std::uint32_t>(out_.size()));
    for (std::uint32_t e : nodes[order[s]].own) out_.push_back(e);
    if (s > 0) {
      std::uint32_t f = fail_[s];
      for (std::uint32_t k = out_begin_[f]; k < out_begin_[f + 1]; ++k) {
        std::uint32_t e = out_[k];
        out_.push_back(e);
      }
    }
  }
  out_begin_.push_back(static_cast<std::uint32_t>(out_.size()));
  nodes.clear();
  nodes.shrink_to_fit();

  // Dense rows: every transition resolved through the failure links.
  const std::size_t width = width_;
  dense_count_ = static_cast<std::uint32_t>(std::min<std::size_t>(n, std::max<std::size_t>(1, dense_budget / (width * 4))));
  dense_limit_ = dense_count_ * width_;
  dense_.assign(static_cast<std::size_t>(dense_limit_), 0);
  for (std::uint32_t s = 0; s < dense_count_; ++s) {
    for (std::size_t c = 0; c < width; ++c) {
      std::uint32_t t;  // the target state
      std::int64_t g = go(s, static_cast<std::uint8_t>(c));
      if (g >= 0) t = static_cast<std::uint32_t>(g);
      else if (s == 0) t = 0;
      else t = decode(dense_[static_cast<std::size_t>(fail_[s]) * width + c] & ~kOut);
      // Whitespace runs are one space: a space after a space stays where it is.
      if (after_space_[s] && c == space_class_) t = s;
      std::uint32_t code = encode(t);
      if (out_begin_[t + 1] > out_begin_[t]) code |= kOut;
      dense_[static_cast<std::size_t>(s) * width + c] = code;
    }
  }
}

std::uint32_t Matcher::step_sparse(std::uint32_t code, std::uint8_t c) const {
  auto flagged = [this](std::uint32_t t) {
    std::uint32_t e = encode(t);
    return out_begin_[t + 1] > out_begin_[t] ? e | kOut : e;
  };
  std::uint32_t s = decode(code);
  if (after_space_[s] && c == space_class_) return flagged(s);
  while (s >= dense_count_) {
    auto b = kid_class_.begin() + kids_begin_[s], e = kid_class_.begin() + kids_begin_[s + 1];
    auto it = std::lower_bound(b, e, c);
    if (it != e && *it == c) return flagged(kid_state_[static_cast<std::size_t>(it - kid_class_.begin())]);
    s = fail_[s];
  }
  return dense_[static_cast<std::size_t>(s) * width_ + c];
}

void Matcher::report(std::uint32_t code, std::string_view text, std::size_t end, std::vector<std::uint32_t>& counts) const {
  if (word_char_at(text, end)) return;  // every entry here ends at `end`
  std::uint32_t state = decode(code);
  for (std::uint32_t k = out_begin_[state]; k < out_begin_[state + 1]; ++k) {
    std::uint32_t e = out_[k];
    if (!word_char_before(text, end - length_[e])) ++counts[e];
  }
}

void Matcher::scan(std::string_view text, std::vector<std::uint32_t>& counts) const {
  const std::uint8_t* cls = classes_;
  const std::uint32_t* dense = dense_.data();
  const std::uint32_t limit = dense_limit_;
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  auto step = [&](std::uint32_t code, std::size_t i) {
    std::uint8_t c = cls[p[i]];
    return code < limit ? dense[code + c] : step_sparse(code, c);
  };
  // One slice [from, end) scanned from `begin` (its warm-up), reporting hits that end at or
  // after `from`.
  struct Slice {
    std::size_t i, from, end;
    std::uint32_t code;
  };
  auto finish = [&](Slice& sl) {
    for (; sl.i < sl.end; ++sl.i) {
      std::uint32_t t = step(sl.code, sl.i);
      sl.code = t & ~kOut;
      if ((t & kOut) && sl.i >= sl.from) [[unlikely]]
        report(sl.code, text, sl.i + 1, counts);
    }
  };
  if (n < kSliceMinimum) {
    Slice one{0, 0, n, 0};
    return finish(one);
  }
  Slice sl[kSlices];
  const std::size_t size = (n + kSlices - 1) / kSlices;
  for (std::size_t k = 0; k < kSlices; ++k) {
    std::size_t from = std::min(n, k * size);
    sl[k] = {from > max_length_ ? from - max_length_ : 0, from, std::min(n, from + size), 0};
  }
  std::size_t common = n;
  for (const auto& x : sl) common = std::min(common, x.end - x.i);
  // The interleaved loop: independent load chains; the compiler keeps the slices in registers
  // (constant indices after unrolling).
  for (std::size_t k = 0; k < common; ++k) {
    for (std::size_t j = 0; j < kSlices; ++j) {
      std::size_t i = sl[j].i + k;
      std::uint32_t t = step(sl[j].code, i);
      sl[j].code = t & ~kOut;
      if ((t & kOut) && i >= sl[j].from) [[unlikely]]
        report(sl[j].code, text, i + 1, counts);
    }
  }
  for (auto& x : sl) {
    x.i += common;
    finish(x);
  }
}

void Matcher::Scan::feed_folded(std::string_view text) { m_.scan(text, counts_); }

void Matcher::Scan::feed(std::string_view utf8) {
  folded_.clear();
  fold_append(utf8, folded_);
  feed_folded(folded_);
}

std::vector<Hit> Matcher::Scan::hits() const {
  std::vector<Hit> out;
  for (std::size_t i = 0; i < counts_.size(); ++i)
    if (counts_[i] > 0) out.push_back({i, counts_[i]});
  return out;
}

double Matcher::Scan::score() const {
  double total = 0;
  for (std::size_t i = 0; i < counts_.size(); ++i) total += counts_[i] * m_.entries_[i].score;
  return total;
}

std::vector<Hit> Matcher::match(std::string_view utf8) const {
  Scan scan(*this);
  scan.feed(utf8);
  return scan.hits();
}

}  // namespace dotgate::match
