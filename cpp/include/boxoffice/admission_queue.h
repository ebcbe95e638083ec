// AdmissionQueue: the waiting room of one concert (docs/engine-rules.md, "Admission queue").
//
// A user joins and gets a queue token. While fewer than `capacity` tokens are
// ACTIVE (and the optional admissions-per-minute budget allows), WAITING
// tokens become ACTIVE strictly in join order. ACTIVE tokens expire after the
// session TTL or when their user pays (completion); WAITING tokens that stop
// polling for the abandon timeout lose their place. Joins before `opens_at`
// land in a pre-queue whose order is shuffled fairly (seeded, reproducible) at
// opening, so arriving early gives no edge over arriving on time.
//
// Position is exact: a rank bitmap over join sequence numbers (RankBitmap)
// counts the WAITING tokens ahead, so users leaving or being dropped ahead
// never make the number drift. The queue never reads a clock; every call carries `now`.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"
#include "boxoffice/events.h"
#include "boxoffice/hold_timer.h"
#include "boxoffice/types.h"

namespace boxoffice {

class SnapshotReader;
class SnapshotWriter;

struct QueueSettings {
  int64_t queue_capacity = 200;      // most ACTIVE tokens at once (SaleSettings::queue_capacity)
  int64_t admission_per_minute = kNoLimit;  // kNoLimit = no rate cap
  DurationUs session_ttl_us = 600 * kMicrosPerSecond;
  DurationUs abandon_timeout_us = 60 * kMicrosPerSecond;
  DurationUs poll_interval_us = 5 * kMicrosPerSecond;  // the poll_after_s a token tells clients
  TimeUs opens_at = kNever;  // joins before this go to the pre-queue
};

// One queue token: 40 bytes. A drop keeps a token for every user who ever
// joined, and most of them are WAITING at its peak, so the record holds what a
// WAITING token needs and little more (at 1 M WAITING users: 46 B per user with
// the join order and rank bitmap, against 101 B for the earlier 88-byte record):
//   - its id is its index in the engine's token table, not stored;
//   - the user, the concert and the join sequence are 32 bits (kCompactIdMax,
//     limits.h: the engine refuses the id that would not fit);
//   - the times only a token that has left the line needs share 8 bytes with the
//     abandon-line links, which only a WAITING token needs (`slot`);
//   - what follows from other fields is derived, not stored: a session's
//     expires_at is activated_at + session_ttl (a concert's settings never
//     change), and expires_at is kNever whenever the token is not ACTIVE.
// AdmissionQueue::Times gives the three times back (TokenTimes).
struct TokenRecord {
  static constexpr uint32_t kNoJoinSeq = UINT32_MAX;  // in the pre-queue: no order yet

  uint32_t user_id = 0;
  uint32_t concert_id = 0;
  uint32_t join_seq = kNoJoinSeq;  // order of admission (JoinSeq gives -1 for kNoJoinSeq)
  TokenStatus status = TokenStatus::kWaiting;
  TokenEnd end = TokenEnd::kNone;
  bool admitted = false;  // it has been ACTIVE: slot.session holds its times
  TimeUs joined_at = 0;
  TimeUs last_seen_at = 0;
  // Which member is in use follows from the state: WAITING: `wait`;
  // admitted (ACTIVE, or EXPIRED after it was ACTIVE): `session`; EXPIRED
  // without being admitted: `ended_at`.
  union Slot {
    struct Links {
      uint32_t prev;  // the abandon line's neighbours (token ids), 0 = none
      uint32_t next;
    } wait;
    uint32_t session;  // index into the queue's sessions (activated_at, ended_at)
    TimeUs ended_at;   // when it became EXPIRED
  } slot{.wait = {0, 0}};

  int64_t JoinSeq() const { return join_seq == kNoJoinSeq ? -1 : static_cast<int64_t>(join_seq); }
};
// The memory per WAITING user (docs/benchmarks.md) rests on this size.
static_assert(sizeof(TokenRecord) == 40, "a queue token is 40 bytes: see above before growing it");

// The times of a token, as a user sees them (kNever = not happened).
struct TokenTimes {
  TimeUs activated_at = kNever;  // when it became ACTIVE
  TimeUs expires_at = kNever;    // session end while ACTIVE
  TimeUs ended_at = kNever;      // when it became EXPIRED
};

// The set of join sequences still WAITING, with exact ranks: one bit per join
// sequence, and a Fenwick tree of the bit counts of 512-bit blocks. A rank
// (how many WAITING ahead) is a Fenwick prefix over the blocks (a tree of
// n / 512 counters, small enough to stay in cache) plus the popcount of at
// most eight words: O(log(n / 512) + 8), and 1 bit of memory per join.
class RankBitmap {
 public:
  void Set(int64_t i);    // i must be clear; Reserve(i) first
  void Clear(int64_t i);  // i must be set
  int64_t Prefix(int64_t end) const;  // set bits in [0, end)
  bool Test(int64_t i) const {  // false beyond the end
    const auto u = static_cast<size_t>(i);
    return i >= 0 && u / 64 < words_.size() && ((words_[u / 64] >> (u % 64)) & 1) != 0;
  }
  // The words, bit i of the bitmap being bit i % 64 of word i / 64 (a queue
  // digest copies them: queue_digest.h).
  size_t word_count() const { return words_.size(); }
  uint64_t word(size_t w) const { return words_[w]; }
  // Replaces the bits by `words` (padded to a whole Fenwick block) and rebuilds the tree.
  void AssignWords(std::vector<uint64_t> words);
  // Ensures index i is addressable (grows by doubling, at least 1,024 bits).
  void Reserve(int64_t i);
  void Reset() {
    words_.clear();
    tree_.clear();
  }

 private:
  static constexpr size_t kBlockWords = 8;  // 512 bits per Fenwick counter
  void TreeAdd(size_t block, int32_t delta);
  std::vector<uint64_t> words_;
  std::vector<int32_t> tree_;  // Fenwick over blocks of kBlockWords words
};

// The live (WAITING or ACTIVE) tokens of every user, across concerts, owned by
// the engine and shared by its queues. A user holds few live tokens at once
// (one per concert queue they are in), so a small inline list per user (16
// bytes, part of the user's record) beats a hash map per queue: one cache line
// per lookup, nothing to rehash, and no memory per queued user.
class LiveTokens {
 public:
  // Makes room for users 1..user (the engine calls it as users are created).
  void Reserve(UserId user) {
    if (static_cast<size_t>(user) >= by_user_.size()) by_user_.resize(static_cast<size_t>(user) + 1);
  }
  // The user's live token for `concert`, or 0.
  TokenId Find(UserId user, ConcertId concert, const std::vector<TokenRecord>& tokens) const {
    if (static_cast<size_t>(user) >= by_user_.size()) return 0;
    for (TokenId t : by_user_[static_cast<size_t>(user)]) {
      if (static_cast<ConcertId>(tokens[static_cast<size_t>(t)].concert_id) == concert) return t;
    }
    return 0;
  }
  void Add(UserId user, TokenId token) {
    Reserve(user);
    by_user_[static_cast<size_t>(user)].push_back(token);
  }
  void Remove(UserId user, TokenId token);
  void Clear() { by_user_.clear(); }

 private:
  std::vector<absl::InlinedVector<TokenId, 1>> by_user_;  // index = UserId
};

// The estimated wait until admission of a WAITING token with `position`
// tokens ahead: its place over the admissions measured in the last minute
// (`admitted_in_window`); with none measured, the admission rate cap, else the
// session TTL over the capacity (each session ending admits one). Never less
// than the rate cap allows, never more than ten years. The engine's ETA and a
// queue digest's (queue_digest.h) are this one function.
DurationUs EstimateWait(int64_t position, int64_t admitted_in_window, const QueueSettings& s);

class AdmissionQueue {
 public:
  // `tokens` is the engine's token table (index = TokenId); the queue appends
  // to it on join. `timer`, `events` and `live` are the engine's.
  AdmissionQueue(ConcertId concert_id, const QueueSettings& settings,
                 TimeUs created_at, std::vector<TokenRecord>* tokens,
                 HoldTimer* timer, EventLog* events, LiveTokens* live);

  // Returns the user's live token, or a new one at the back of the line.
  // Errors: QUEUE_FULL when `queue_length_max` live tokens already exist.
  absl::StatusOr<TokenId> Join(UserId user, TimeUs now, int64_t queue_length_max);
  // A poll: the token is still wanted (resets the abandon timeout).
  void Touch(TokenId id, TimeUs now);
  // The user leaves (WAITING or ACTIVE -> EXPIRED/LEFT). No-op when EXPIRED.
  void Leave(TokenId id, TimeUs now);
  // The user paid: ACTIVE -> EXPIRED/COMPLETED, the slot goes to the next.
  void Complete(TokenId id, TimeUs now);

  // Timer callbacks, called by the engine in deadline order. A session entry
  // may be stale (hold_timer.h): OnSessionExpiry checks.
  //
  // Abandonment: every WAITING token is in the queue's abandon line, ordered by
  // last_seen_at (a poll moves the token to the back), so the earliest abandon
  // deadline is always the front's, and the timer holds one kAbandon entry per
  // queue (id = concert), not one per token. OnAbandonDue(at) ends every token
  // whose deadline is `at`, in token id order, then schedules the next front's
  // deadline (the entry may have come due early, when the front polled since:
  // then it only reschedules). Abandons due at the same instant therefore fire
  // concert by concert, in token id order within a concert.
  void OnOpen(TimeUs at, uint64_t seed);
  void OnSessionExpiry(TokenId id, TimeUs at);
  void OnAbandonDue(TimeUs at);
  void OnAdmissionTick(TimeUs at);

  // Number of WAITING tokens ahead of `id` (exact); -1 when the token is in
  // the pre-queue (order not drawn yet) or not WAITING.
  int64_t Position(TokenId id) const;
  // The activation, session end and end times of a token of this queue.
  TokenTimes Times(const TokenRecord& t) const {
    TokenTimes times;
    if (t.admitted) {
      const Session& s = sessions_[t.slot.session];
      times.activated_at = s.activated_at;
      times.ended_at = s.ended_at;
      if (t.status == TokenStatus::kActive) times.expires_at = SessionEnd(s);
    } else if (t.status == TokenStatus::kExpired) {
      times.ended_at = t.slot.ended_at;
    }
    return times;
  }
  // Estimated wait until admission, from the measured admission rate.
  DurationUs Eta(TokenId id, TimeUs now) const;
  // Appends the queue's digest as of `now` (the engine's clock) to `out`:
  // what a worker needs to answer a WAITING token's poll (queue_digest.h has
  // the format). O(WAITING span / 64) time; bytes: runs of the rank bitmap.
  // LIMIT_EXCEEDED (nothing appended) when the span from the head to the last
  // join is over kQueueDigestWordsMax words.
  absl::Status EncodeDigest(TimeUs now, std::string* out) const;

  ConcertId concert_id() const { return concert_id_; }
  const QueueSettings& settings() const { return settings_; }
  bool open() const { return open_; }
  int64_t waiting() const { return waiting_ + prequeue_waiting_; }
  int64_t active() const { return active_; }
  int64_t admitted_total() const { return admitted_total_; }
  int64_t joined_total() const { return joined_total_; }
  int64_t abandoned_total() const { return abandoned_total_; }
  // Live (WAITING or ACTIVE) token of `user`, or 0.
  TokenId LiveToken(UserId user) const { return live_->Find(user, concert_id_, *tokens_); }

  // Checks the queue's own invariants; returns a description or "".
  std::string CheckInvariants() const;
  // Snapshot (snapshot_io.h). Encode/Decode: the queue's own scalars (open,
  // head, counters, the admission budget, recent admission times, which may
  // not lie after `clock`); its settings come from the concert, and its join
  // order, pre-queue, rank bitmap, sessions and abandon line follow from the
  // tokens (below).
  void Encode(SnapshotWriter& w) const;
  void Decode(SnapshotReader& r, TimeUs clock);
  // One token of this queue, after its user and concert (which the engine
  // writes: they choose the queue): state, end, join sequence, joined_at as a
  // delta from `prev_joined` (the previous token's), last_seen_at, then the
  // times its state has (format version 2: activated_at once admitted,
  // ended_at once EXPIRED; version 1: all three of TokenTimes). DecodeToken
  // fills `t` (its user and concert set), records its session, and checks
  // the times against `clock`, the join sequence against `tokens` (the
  // snapshot's token count) and the fields against each other; false on
  // damage.
  void EncodeToken(SnapshotWriter& w, const TokenRecord& t, TimeUs prev_joined) const;
  bool DecodeToken(SnapshotReader& r, TokenRecord& t, TokenId id, int64_t tokens,
                   TimeUs prev_joined, TimeUs clock);
  // The indexes, restored once every token is decoded (each false on damage):
  // RestoreOrder sizes the join order for the `sequenced` tokens of this
  // queue that have a join sequence; RestoreToken, called for each token of
  // the queue in id order, places it in the join order or the pre-queue and
  // registers it as its user's live token when it is; RestoreEnd checks the
  // counters against the tokens and rebuilds the rank bitmap.
  void RestoreOrder(size_t sequenced);
  bool RestoreToken(SnapshotReader& r, TokenId id);
  bool RestoreEnd(SnapshotReader& r);
  // Links every WAITING token into the abandon line by (last_seen_at, id) and
  // schedules the front's deadline; returns it (kNever when none WAITs).
  TimeUs RebuildAbandonLine();

  // Feeds the queue's state to `mix` in a canonical order (for state hashes).
  template <typename Mix>
  void Digest(Mix&& mix) const {
    mix(concert_id_);
    mix(open_ ? 1 : 0);
    mix(waiting_);
    mix(active_);
    mix(head_);
    mix(next_admit_at_);
    mix(tick_at_);
    mix(admitted_total_);
    for (uint32_t t : order_) mix(static_cast<int64_t>(t));
    for (uint32_t t : prequeue_) mix(static_cast<int64_t>(t));
    mix(prequeue_waiting_);
    for (TimeUs t : recent_admissions_) mix(t);
  }

 private:
  TokenRecord& token(TokenId id) { return (*tokens_)[static_cast<size_t>(id)]; }
  const TokenRecord& token(TokenId id) const { return (*tokens_)[static_cast<size_t>(id)]; }
  // The times of an ACTIVE token or one that was: few at once (at most
  // `capacity` ACTIVE), so they live here rather than in every token.
  struct Session {
    TimeUs activated_at = kNever;
    TimeUs ended_at = kNever;  // kNever while ACTIVE
  };
  TimeUs SessionEnd(const Session& s) const { return s.activated_at + settings_.session_ttl_us; }
  void AdmitWhilePossible(TimeUs at);
  // Admissions in (now - the ETA window, now] (cached per `now`).
  int64_t AdmittedInWindow(TimeUs now) const;
  // Ends a live token (its timer entries go stale).
  void End(TokenId id, TokenEnd why, TimeUs at, EventType event);
  void Emit(EventType type, TokenId id, TimeUs at, int64_t value);
  void Enqueue(TokenId id);  // gives the token the next join sequence
  // The abandon line (see OnAbandonDue).
  void LinkWaiting(TokenId id);    // at the back
  void UnlinkWaiting(TokenId id);
  TimeUs AbandonDeadline(const TokenRecord& t) const {
    return t.last_seen_at + settings_.abandon_timeout_us;
  }
  // Schedules the front's abandon deadline unless an entry is pending.
  void ScheduleAbandon();

  ConcertId concert_id_;
  QueueSettings settings_;
  std::vector<TokenRecord>* tokens_;
  HoldTimer* timer_;
  EventLog* events_;
  LiveTokens* live_;

  bool open_ = false;
  std::vector<uint32_t> order_;     // join sequence -> token
  std::vector<uint32_t> prequeue_;  // joined before opens_at, not yet ordered
  std::vector<Session> sessions_;   // TokenRecord::slot.session -> times
  int64_t prequeue_waiting_ = 0;   // of those, still WAITING
  RankBitmap waiting_at_;          // join sequences still WAITING
  int64_t head_ = 0;               // first join sequence that may be WAITING
  int64_t waiting_ = 0;            // WAITING tokens with a join sequence
  int64_t active_ = 0;
  TimeUs next_admit_at_ = 0;       // admission-rate budget (GCRA, burst 1)
  TimeUs tick_at_ = 0;             // scheduled kAdmissionTick, or 0
  std::deque<TimeUs> recent_admissions_;  // for the measured rate (ETA)
  // Eta's count of admissions in the window, for one `now` (a cache, not state:
  // every poll of a batch at the same time reuses it).
  mutable TimeUs eta_now_ = -1;
  mutable int64_t eta_admitted_ = 0;
  TokenId wait_front_ = 0;         // the abandon line, earliest deadline first
  TokenId wait_back_ = 0;
  TimeUs abandon_at_ = 0;          // the pending kAbandon entry, or 0
  int64_t admitted_total_ = 0;
  int64_t joined_total_ = 0;
  int64_t abandoned_total_ = 0;
};

}  // namespace boxoffice
