// QueueDigest: see queue_digest.h for what it is for and its format. Both
// directions live here, so the format has one home: AdmissionQueue::
// EncodeDigest (which reads the queue's private state) and QueueDigest::Decode.
#include "boxoffice/queue_digest.h"

#include <algorithm>
#include <bit>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "boxoffice/errors.h"
#include "boxoffice/limits.h"
#include "boxoffice/snapshot_io.h"

namespace boxoffice {
namespace {

enum RunKind : uint64_t { kZeros = 0, kOnes = 1, kLiteral = 2 };
constexpr uint64_t kAllOnes = ~uint64_t{0};

}  // namespace

absl::Status AdmissionQueue::EncodeDigest(TimeUs now, std::string* out) const {
  const auto joined = static_cast<int64_t>(order_.size());
  // Every join sequence before the head has left the line: the bitmap starts at its word.
  const int64_t first_word = head_ / 64;
  const int64_t end_word = (joined + 63) / 64;
  if (end_word - first_word > kQueueDigestWordsMax) {
    return MakeError(ErrorCode::kLimitExceeded,
                     absl::StrCat("the line of concert ", concert_id_, " spans ",
                                  joined - head_, " join sequences: too long for a digest"));
  }
  SnapshotWriter w;
  w.U8(QueueDigest::kVersion);
  w.Int(concert_id_);
  w.Int(now);
  w.Bool(open_);
  w.Int(settings_.poll_interval_us);
  w.Int(settings_.queue_capacity);
  w.Int(settings_.admission_per_minute);
  w.Int(settings_.session_ttl_us);
  w.Int(settings_.abandon_timeout_us);
  w.Int(AdmittedInWindow(now));
  w.Int(waiting_);
  w.Int(prequeue_waiting_);
  w.Int(active_);
  w.Int(joined);
  w.Int(first_word);
  auto word = [&](int64_t i) -> uint64_t {
    return static_cast<size_t>(i) < waiting_at_.word_count() ? waiting_at_.word(static_cast<size_t>(i))
                                                             : 0;
  };
  for (int64_t i = first_word; i < end_word;) {
    const uint64_t x = word(i);
    int64_t j = i + 1;
    if (x == 0 || x == kAllOnes) {
      while (j < end_word && word(j) == x) ++j;
      w.Var(static_cast<uint64_t>(j - i) << 2 | (x == 0 ? kZeros : kOnes));
    } else {
      while (j < end_word && word(j) != 0 && word(j) != kAllOnes) ++j;
      w.Var(static_cast<uint64_t>(j - i) << 2 | kLiteral);
      for (int64_t k = i; k < j; ++k) w.Fixed64(word(k));
    }
    i = j;
  }
  out->append(w.bytes());
  return absl::OkStatus();
}

absl::StatusOr<QueueDigest> QueueDigest::Decode(absl::string_view bytes) {
  SnapshotReader r(bytes, kVersion);
  QueueDigest d;
  d.encoded_bytes_ = bytes.size();
  const uint8_t version = r.U8();
  r.Check(version == kVersion, absl::StrCat("unknown digest version ", version));
  d.concert_id_ = r.Int("concert", 1, kCompactIdMax);
  d.as_of_ = r.Int("as_of", 0, kTimeMaxUs);
  d.open_ = r.Bool("open");
  d.settings_.poll_interval_us = r.Int("poll interval", 0, kSnapshotTimeLimit);
  d.settings_.queue_capacity = r.Int("queue capacity", 1, kCompactIdMax);
  d.settings_.admission_per_minute = r.Int("admission rate", kNoLimit, kSnapshotTimeLimit);
  d.settings_.session_ttl_us = r.Int("session TTL", 1, kSnapshotTimeLimit);
  d.settings_.abandon_timeout_us = r.Int("abandon timeout", 1, kSnapshotTimeLimit);
  d.admitted_in_window_ = r.Int("admissions in the window", 0, kCompactIdMax);
  d.waiting_ = r.Int("waiting", 0, kCompactIdMax);
  d.prequeue_waiting_ = r.Int("pre-queue waiting", 0, kCompactIdMax);
  d.active_ = r.Int("active", 0, kCompactIdMax);
  d.joined_ = r.Int("join sequences", 0, kCompactIdMax + 1);
  const int64_t end_word = (d.joined_ + 63) / 64;
  // At most kQueueDigestWordsMax words: a longer span is damage, not a digest.
  const int64_t first_word =
      r.Int("first word", std::max<int64_t>(0, end_word - kQueueDigestWordsMax), end_word);
  d.first_bit_ = first_word * 64;
  std::vector<uint64_t> words;
  const auto need = static_cast<size_t>(end_word - first_word);
  // Ones are counted as runs are read, so a run claiming more WAITING tokens than the
  // digest says is refused before anything is allocated for it.
  int64_t ones_left = d.waiting_;
  while (r.ok() && words.size() < need) {
    const uint64_t header = r.Var();
    const uint64_t length = header >> 2;
    const uint64_t kind = header & 3;
    if (!r.Check(length >= 1 && length <= need - words.size() && kind <= kLiteral,
                 "a bitmap run out of range")) {
      break;
    }
    if (kind == kLiteral) {
      if (!r.Check(r.remaining() / 8 >= length, "a bitmap run past the end")) break;
      for (uint64_t k = 0; k < length; ++k) words.push_back(r.Fixed64());
    } else {
      if (kind == kOnes) {
        ones_left -= static_cast<int64_t>(length) * 64;
        if (!r.Check(ones_left >= 0, "the bitmap has more WAITING tokens than the digest")) break;
      }
      words.insert(words.end(), length, kind == kOnes ? kAllOnes : 0);
    }
  }
  int64_t set = 0;
  for (uint64_t x : words) set += std::popcount(x);
  r.Check(set == d.waiting_, "the bitmap does not count the WAITING tokens");
  if (r.ok() && d.joined_ % 64 != 0 && !words.empty()) {
    r.Check((words.back() >> (d.joined_ % 64)) == 0, "a WAITING bit past the last join sequence");
  }
  r.Check(r.AtEnd(), "bytes after the digest");
  if (!r.ok()) {
    absl::string_view what = r.status().message();
    absl::ConsumePrefix(&what, "damaged snapshot: ");  // the reader's words for its own format
    return MakeError(ErrorCode::kDataLoss, absl::StrCat("damaged queue digest: ", what));
  }
  d.waiting_at_.AssignWords(std::move(words));
  return d;
}

int64_t QueueDigest::Position(int64_t join_seq) const {
  const int64_t bit = join_seq - first_bit_;
  if (join_seq >= joined_ || !waiting_at_.Test(bit)) return -1;
  return waiting_at_.Prefix(bit);
}

DurationUs QueueDigest::Eta(int64_t position) const {
  return EstimateWait(position, admitted_in_window_, settings_);
}

}  // namespace boxoffice
