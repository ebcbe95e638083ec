// Engine: the whole domain as one deterministic state machine.
//
// It composes an AdmissionQueue per concert, a SeatInventory per schedule,
// one HoldTimer for every deadline, one Ledger and one EventLog, and keeps the
// reservations, payments and idempotency records. Every command and query
// takes `now`; the engine first advances its clock to max(now, last now) and
// fires every deadline up to it (so a read after expires_at never sees a
// seat as held), then applies the command all-or-nothing: a command either
// returns an error and changes nothing, or succeeds and changes everything it
// names. The one deliberate exception is a concert's
// `release_on_payment_failure` policy, which cancels the reservation when a
// payment fails for lack of balance (a compensation: the seats go back at once
// instead of at expiry) and still reports INSUFFICIENT_BALANCE.
//
// Thread safety: every public method takes one internal mutex, so an Engine
// may be shared by many threads; commands are applied one at a time in the
// order the mutex grants them. Given the same commands in the same order, two
// engines end in the same state (same `StateHash`), which is what the journal
// (docs/architecture.md, "Durability") relies on: every state change enters
// through Apply (command.h), which the typed calls below wrap.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "boxoffice/admission_queue.h"
#include "boxoffice/batch.h"
#include "boxoffice/events.h"
#include "boxoffice/hold_timer.h"
#include "boxoffice/ledger.h"
#include "boxoffice/limits.h"
#include "boxoffice/reservation.h"
#include "boxoffice/seat_inventory.h"
#include "boxoffice/command.h"
#include "boxoffice/types.h"
#include "boxoffice/views.h"

namespace boxoffice {

class SnapshotCodec;
class SnapshotReader;
class SnapshotWriter;

struct EngineConfig {
  Limits limits;
  uint64_t seed = 0;  // draws the pre-queue shuffles; same seed, same draw
};

struct HoldRequest {
  UserId user_id = 0;
  TokenId token_id = 0;
  ScheduleId schedule_id = 0;
  std::vector<SeatId> seat_ids;  // explicit seats, or empty for best-available
  int64_t quantity = 0;          // best-available: how many adjacent seats
  std::string grade;             // best-available: which grade ("" = any)
  std::string idempotency_key;   // "" = none
};

class Engine {
 public:
  explicit Engine(EngineConfig config = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const Limits& limits() const { return config_.limits; }
  // The pre-queue shuffle's seed (kept in every snapshot). A server's store
  // draws it at random and keeps it secret: knowing it predicts every opening.
  uint64_t seed() const { return config_.seed; }

  // --- commands ---------------------------------------------------------
  // The one way state changes: takes the lock, refuses a `now` outside
  // [0, kTimeMaxUs] and every command once the sink stopped accepting
  // (STORE_UNAVAILABLE), reports the command to the sink, fires every deadline
  // up to `now`, then applies the op all-or-nothing (docs/engine-rules.md).
  // A refusal is a Result with its code, never an exception.
  Result Apply(const Command& command);
  // The typed calls below build a Command, Apply it and unwrap the Result.
  absl::StatusOr<UserId> CreateUser(TimeUs now);
  absl::StatusOr<ConcertView> CreateConcert(const ConcertSpec& spec, TimeUs now);
  // Joins the concert's queue, or returns the user's live token for it (never
  // a second place); the view's `created` says which.
  absl::StatusOr<TokenView> JoinQueue(UserId user, ConcertId concert, TimeUs now);
  // A poll: the token's status, position and ETA; resets its abandon timeout.
  absl::StatusOr<TokenView> QueueStatus(UserId user, TokenId token, TimeUs now);
  absl::StatusOr<TokenView> LeaveQueue(UserId user, TokenId token, TimeUs now);
  // The gate: OK with the token when it is the user's ACTIVE token for the
  // concert; QUEUE_NOT_ACTIVE (position, ETA), QUEUE_TOKEN_EXPIRED or
  // QUEUE_TOKEN_INVALID otherwise. Counts as a poll.
  absl::StatusOr<TokenView> CheckGate(UserId user, TokenId token, ConcertId concert,
                                      TimeUs now);
  absl::StatusOr<Reservation> Hold(const HoldRequest& request, TimeUs now);
  absl::StatusOr<Reservation> ReleaseSeat(UserId user, ReservationId reservation,
                                          SeatId seat, TimeUs now);
  absl::StatusOr<Reservation> Cancel(UserId user, ReservationId reservation, TimeUs now);
  absl::StatusOr<ChargeResult> Charge(UserId user, Won amount,
                                      absl::string_view idempotency_key, TimeUs now);
  absl::StatusOr<Payment> Pay(UserId user, TokenId token, ReservationId reservation,
                              absl::string_view idempotency_key, TimeUs now);
  absl::StatusOr<Reservation> Refund(UserId user, ReservationId reservation, TimeUs now);
  // Fires every deadline up to `now` (an impossible `now` does nothing).
  void Advance(TimeUs now);
  // Applies commands[i] and writes results[i], in order (same length), under
  // one lock: each record becomes a Command (batch.h) applied as Apply does.
  void ApplyBatch(std::span<const BatchCommand> commands, std::span<BatchResult> results);

  // --- queries (each first advances to `now`) ----------------------------
  absl::StatusOr<ConcertView> GetConcert(ConcertId concert, TimeUs now);
  // Concerts whose title or artist contains `query` (ASCII case-insensitive)
  // and that have a schedule starting in [starts_from, starts_to] (nullopt = open).
  std::vector<ConcertView> ListConcerts(absl::string_view query,
                                        std::optional<TimeUs> starts_from,
                                        std::optional<TimeUs> starts_to, TimeUs now);
  absl::StatusOr<std::vector<ScheduleView>> ListSchedules(ConcertId concert, TimeUs now);
  // The user's live (WAITING or ACTIVE) token for the concert, if any. A read:
  // unlike JoinQueue it neither joins nor counts as a poll.
  absl::StatusOr<std::optional<TokenView>> LiveToken(UserId user, ConcertId concert, TimeUs now);
  absl::StatusOr<std::vector<SeatView>> ListSeats(ScheduleId schedule,
                                                  std::optional<SeatStatus> status,
                                                  TimeUs now);
  // One page of ListSeats: the first `limit` seats with id > `after`, in
  // seat-map order (a page costs O(limit), not O(schedule)).
  absl::StatusOr<std::vector<SeatView>> ListSeats(ScheduleId schedule,
                                                  std::optional<SeatStatus> status,
                                                  SeatId after, int64_t limit, TimeUs now);
  // The seats page behind the gate, in one call under one lock: the GATE
  // command for `concert` (journaled, counts as a poll: CheckGate), then one
  // page of ListSeats when `schedule` belongs to that concert. Errors: the
  // gate's (QUEUE_NOT_ACTIVE, QUEUE_TOKEN_EXPIRED, QUEUE_TOKEN_INVALID), then
  // SCHEDULE_NOT_FOUND, then QUEUE_TOKEN_INVALID for another concert's schedule.
  absl::StatusOr<std::vector<SeatView>> ListSeatsGated(UserId user, TokenId token,
                                                       ConcertId concert, ScheduleId schedule,
                                                       std::optional<SeatStatus> status,
                                                       SeatId after, int64_t limit, TimeUs now);
  absl::StatusOr<Reservation> GetReservation(UserId user, ReservationId reservation,
                                             TimeUs now);
  absl::StatusOr<std::vector<Reservation>> ListReservations(UserId user, TimeUs now);
  absl::StatusOr<Won> Balance(UserId user, TimeUs now);
  absl::StatusOr<std::vector<HistoryEntry>> History(UserId user, TimeUs now);
  absl::StatusOr<ConcertStats> Stats(ConcertId concert, TimeUs now);
  // The concert's queue digest as of `now` (queue_digest.h): what an HTTP
  // worker of a cluster answers polls from. CONCERT_NOT_FOUND; LIMIT_EXCEEDED
  // for a line longer than kQueueDigestWordsMax words of join sequences.
  absl::StatusOr<std::string> EncodeQueueDigest(ConcertId concert, TimeUs now);
  std::vector<Event> EventsAfter(Seq after, int64_t limit);
  Seq last_event_seq();
  int64_t user_count();     // users are 1..user_count()
  int64_t concert_count();  // concerts are 1..concert_count()
  TimeUs clock();

  // --- journal seam ------------------------------------------------------
  // Reports every state-changing call to `sink` before applying it, under the
  // engine's lock, in apply order (nullptr: none). Set it before the engine
  // is shared; the sink must outlive the engine or be reset first.
  // `journal_seq` is the sink's sequence of the last command already in the
  // state (after a recovery: the last one replayed).
  void SetCommandSink(CommandSink* sink, Seq journal_seq = 0);
  // The sequence number the sink gave the last command this thread applied
  // on this engine (0 if none): what a caller waits on to be durable.
  Seq LastRecordedSeq() const;
  // The sink this engine reports to (nullptr: none).
  CommandSink* sink();

  // A 64-bit digest of the whole state, equal for equal states.
  uint64_t StateHash();
  // Checks every invariant (docs/engine-rules.md, "Invariants") over the whole
  // state; INTERNAL with a description when one is broken (which is a bug).
  absl::Status CheckInvariants();

 private:
  // The snapshot body (snapshot.h): the engine's own tables and, through their
  // own codecs, its components', section by section; StateHash digests the
  // same (engine_state.cc). snapshot.cc frames the body and is the one
  // friend, for these two entry points.
  friend class SnapshotCodec;
  struct State;
  void EncodeState(SnapshotWriter& w, Seq* journal_seq);  // takes mu_
  static absl::StatusOr<std::unique_ptr<Engine>> DecodeState(SnapshotReader& r);

  struct User;
  struct Concert;
  struct IdempotencyRecord;
  struct HoldArgs;

  // Apply with mu_ held: the preamble, then ApplyLocked.
  Result ApplyHeld(const Command& c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Apply after the preamble (mu_ held, command recorded, clock advanced).
  Result ApplyLocked(const Command& c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sets `out` to the Command a batch record stands for, or returns the refusal its arguments get
  // before any rule runs (the op's own checks come after, in ApplyLocked).
  // `legacy`: the record uses the batch numbering of journal record type 13.
  absl::Status BatchToCommand(const BatchCommand& b, bool legacy, Command* out) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // One batch record: BatchToCommand, then the preamble and ApplyLocked.
  Result ApplyBatchRecord(const BatchCommand& b, bool legacy, Command* scratch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Unlocked implementations; `*Locked` names need mu_ held.
  ConcertView CreateConcertLocked(const ConcertSpec& spec) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Fires every deadline up to max(now, clock_); returns the new clock.
  TimeUs AdvanceLocked(TimeUs now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Fire(const TimerEntry& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<UserId> CreateUserLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<TokenView> JoinLocked(UserId user, ConcertId concert)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<TokenView> StatusLocked(UserId user, TokenId token)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<TokenView> LeaveLocked(UserId user, TokenId token)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The user's token for `concert` when it is ACTIVE (the call counts as a poll), or
  // nullptr with `*refused` set. A value, not a Status: a WAITING user at the gate is
  // the most common refusal of a drop.
  const TokenRecord* GateLocked(UserId user, TokenId token, ConcertId concert,
                               Refusal* refused) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<TokenRecord*> UserToken(UserId user, TokenId token)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Reservation> HoldLocked(const HoldArgs& a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Reservation> ReleaseSeatLocked(UserId user, ReservationId id, SeatId seat)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Reservation> CancelLocked(UserId user, ReservationId id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<ChargeResult> ChargeLocked(UserId user, Won amount, absl::string_view key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Payment> PayLocked(UserId user, TokenId token, ReservationId id,
                                    absl::string_view key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Reservation> RefundLocked(UserId user, ReservationId id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Journal reporting (no-ops without a sink).
  void RecordCommand(const Command& c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A query moves the clock: reported as kAdvance when it would.
  void RecordQuery(TimeUs now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // One page of a schedule's seats (`schedule` is known).
  std::vector<SeatView> SeatPageLocked(ScheduleId schedule, std::optional<SeatStatus> status,
                                       SeatId after, int64_t limit) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  absl::Status CheckUser(UserId user) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Reservation*> OwnedReservation(UserId user, ReservationId id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends a PENDING reservation: seats back to AVAILABLE, hold timer cancelled.
  void EndPending(Reservation& r, ReservationStatus to, EventType event)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether a timer entry is state of its own: not stale (entries are cancelled
  // lazily: see hold_timer.h) and not an abandon entry (the queues' abandon
  // lines follow from the WAITING tokens' last_seen_at).
  bool TimerLive(const TimerEntry& e) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  void AdjustUserSeats(UserId user, ConcertId concert, int64_t delta)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  TokenView ViewToken(TokenId id) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  ConcertView ViewConcert(const Concert& c) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  ScheduleView ViewSchedule(const SeatInventory& s) const;
  void Emit(EventType type, UserId user, ConcertId concert, TokenId token,
            ReservationId reservation, Won amount, int64_t value)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Idempotency: a stored result for (user, op, key), or nullptr.
  const IdempotencyRecord* FindIdempotent(UserId user, uint8_t op, absl::string_view key) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  template <typename T>
  void RememberIdempotent(UserId user, uint8_t op, absl::string_view key,
                          uint64_t fingerprint, const T& result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const EngineConfig config_;
  const uint64_t id_;  // unique per process, for LastRecordedSeq
  // A plain mutex: absl::Mutex's deadlock detection showed up in profiles.
  mutable std::mutex mu_;
  TimeUs clock_ ABSL_GUARDED_BY(mu_) = 0;
  CommandSink* sink_ ABSL_GUARDED_BY(mu_) = nullptr;
  // The sink's sequence for the last command recorded: a snapshot taken under
  // the lock is the state after exactly this command.
  Seq journal_seq_ ABSL_GUARDED_BY(mu_) = 0;
  HoldTimer timer_ ABSL_GUARDED_BY(mu_);
  EventLog events_ ABSL_GUARDED_BY(mu_);
  Ledger ledger_ ABSL_GUARDED_BY(mu_);
  std::vector<User> users_ ABSL_GUARDED_BY(mu_);                // index = UserId - 1
  std::vector<std::unique_ptr<Concert>> concerts_ ABSL_GUARDED_BY(mu_);  // index = id - 1
  std::vector<std::unique_ptr<SeatInventory>> schedules_ ABSL_GUARDED_BY(mu_);
  std::vector<TokenRecord> tokens_ ABSL_GUARDED_BY(mu_);         // index = TokenId
  LiveTokens live_tokens_ ABSL_GUARDED_BY(mu_);  // rebuilt from tokens_ by a snapshot
  std::vector<Reservation> reservations_ ABSL_GUARDED_BY(mu_);  // index = id - 1
  std::vector<Payment> payments_ ABSL_GUARDED_BY(mu_);          // index = id - 1
  SeatId next_seat_id_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<std::pair<UserId, ConcertId>, int64_t> user_seats_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int64_t> idempotency_index_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<int64_t, std::unique_ptr<IdempotencyRecord>> idempotency_
      ABSL_GUARDED_BY(mu_);
  int64_t next_idempotency_id_ ABSL_GUARDED_BY(mu_) = 1;
  // Not state: the Command each batch record is converted into, reused so that a
  // batch (or a one-record batch per call) builds no Command per record.
  Command batch_scratch_ ABSL_GUARDED_BY(mu_);
};

}  // namespace boxoffice
