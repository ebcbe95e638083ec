// QueueDigest: one concert's waiting room as of one moment, small enough to
// broadcast, exact enough to answer a poll (docs/scale-out.md, "Polls").
//
// In a cluster most of a drop's requests are queue polls. A replica encodes
// each busy concert's digest about once a second (AdmissionQueue::EncodeDigest)
// and publishes it; HTTP workers keep the newest one per concert and answer a
// WAITING token's poll from it: its position is the number of join sequences
// still WAITING before its own, read from the digest's copy of the queue's
// rank bitmap, and its ETA is the engine's own estimate (EstimateWait) from
// the digest's admission rate. Both are what the engine would have answered at
// the digest's `as_of`: the same code, not a second model.
//
// What a digest cannot say it does not guess: a join sequence beyond the
// digest, or one that was not WAITING as of it (admitted, left, abandoned),
// answers "unknown" (Position -1), and the caller asks the engine.
//
// Format (version 1; integers as snapshot_io.h writes them): the version byte,
// the concert, `as_of`, whether the queue is open, its settings that an answer
// needs (poll interval, capacity, admission rate cap, session TTL, abandon
// timeout), the
// admissions of the ETA window at `as_of`, the counters (WAITING with a join
// sequence, WAITING in the pre-queue, ACTIVE), the join sequences issued, and
// the rank bitmap's words from the queue's head on, as runs: a varint
// `length << 2 | kind`, kind 0 = that many all-zero words, 1 = all-one words,
// 2 = that many literal 64-bit words following. A drop's bitmap is long runs
// of ones (everyone still waiting) near its tail and zeros behind the head, so
// a million WAITING tokens encode in a few bytes plus their ragged edges.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "boxoffice/admission_queue.h"
#include "boxoffice/types.h"

namespace boxoffice {

class QueueDigest {
 public:
  static constexpr uint8_t kVersion = 1;

  // Reads a digest written by AdmissionQueue::EncodeDigest. Trusts nothing:
  // DATA_LOSS ("damaged queue digest: ...") for bytes it did not write.
  static absl::StatusOr<QueueDigest> Decode(absl::string_view bytes);

  // WAITING tokens ahead of the token with join sequence `join_seq` as of the
  // digest, or -1 when that token was not WAITING then (or joined after it).
  int64_t Position(int64_t join_seq) const;
  // The engine's ETA for a WAITING token with `position` tokens ahead, as of
  // the digest (AdmissionQueue::Eta at `as_of`).
  DurationUs Eta(int64_t position) const;

  ConcertId concert_id() const { return concert_id_; }
  TimeUs as_of() const { return as_of_; }  // the engine clock it was taken at
  bool open() const { return open_; }
  DurationUs poll_interval_us() const { return settings_.poll_interval_us; }
  // How long a WAITING token may go without a poll (what a worker's touches keep alive).
  DurationUs abandon_timeout_us() const { return settings_.abandon_timeout_us; }
  int64_t waiting() const { return waiting_ + prequeue_waiting_; }
  int64_t active() const { return active_; }
  int64_t joined() const { return joined_; }  // join sequences issued: [0, joined)
  size_t encoded_bytes() const { return encoded_bytes_; }

 private:
  ConcertId concert_id_ = 0;
  TimeUs as_of_ = 0;
  bool open_ = false;
  QueueSettings settings_;
  int64_t admitted_in_window_ = 0;
  int64_t waiting_ = 0;
  int64_t prequeue_waiting_ = 0;
  int64_t active_ = 0;
  int64_t joined_ = 0;
  int64_t first_bit_ = 0;  // the bitmap's bit 0 is this join sequence (a multiple of 64)
  RankBitmap waiting_at_;
  size_t encoded_bytes_ = 0;
};

}  // namespace boxoffice
