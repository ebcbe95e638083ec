// The engine's own state in a snapshot and in the state hash.
//
// Each component encodes, decodes and digests its own state (AdmissionQueue,
// SeatInventory, Ledger, HoldTimer, EventLog; the byte level is
// snapshot_io.h). This file does the same for what the engine keeps itself —
// config and clock, users, concerts, queue tokens, reservations, payments,
// per-user seat counts, idempotency records — and assembles the snapshot body
// from all of them, section by section in the order snapshot.h gives, and
// StateHash from their digests. snapshot.cc frames the body (header and
// checksum).
//
// Decoding trusts nothing: every count is checked against the bytes left
// before anything is allocated, every id against what it names, and every
// index the engine later uses without checking (the timer's deadlines, a
// queue's order, the payment of a reservation) is either rebuilt from the
// primary state or cross-checked, so that a damaged snapshot is DATA_LOSS and
// never an assertion or a crash later on.
#include <algorithm>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "boxoffice/assert.h"
#include "boxoffice/digest.h"
#include "boxoffice/engine.h"
#include "boxoffice/snapshot_io.h"
#include "engine_internal.h"

namespace boxoffice {
namespace {

// The bounds CreateConcert enforces on sale settings (limits.h).
constexpr int64_t kSaleTimeMaxUs = kTimeMaxUs;

// Tripwires: a new field in one of these records must be added to the
// snapshot (and then the expected size here). LP64 layouts.
static_assert(sizeof(Limits) == 18 * sizeof(int64_t), "new Limits field: add it to the snapshot");
static_assert(sizeof(EngineConfig) == sizeof(Limits) + 8, "new EngineConfig field");
static_assert(sizeof(SaleSettings) == 80, "new SaleSettings field: add it to the snapshot");
static_assert(sizeof(Payment) == 56, "new Payment field: add it to the snapshot");
static_assert(sizeof(ChargeResult) == 40, "new ChargeResult field: add it to the snapshot");
static_assert(sizeof(Reservation) == 128, "new Reservation field: add it to the snapshot");

// Every Limits field, in snapshot order.
#define BOXOFFICE_SNAPSHOT_LIMITS(X)                                                     \
  X(users_max) X(concerts_max) X(schedules_per_concert_max) X(sections_per_schedule_max) \
  X(seats_per_schedule_max) X(rows_per_section_max) X(seats_per_row_max)                 \
  X(seats_per_reservation_max) X(queue_length_max) X(queue_capacity_max) X(price_max)    \
  X(charge_amount_max) X(balance_max) X(text_length_max) X(idempotency_key_length_max)   \
  X(idempotency_ttl_us) X(event_retention_max) X(list_limit_max)

// The section tags of the body, in order.
enum class Tag : uint8_t {
  kConfig = 1,
  kClock,
  kAccounts,
  kUsers,
  kConcerts,
  kTokens,
  kReservations,
  kPayments,
  kHistory,
  kSeats,
  kUserSeats,
  kIdempotency,
  kTicks,
  kEvents,
  kEnd,
};

void Section(SnapshotWriter& w, Tag t) { w.U8(static_cast<uint8_t>(t)); }
void Section(SnapshotReader& r, Tag t, absl::string_view name) {
  r.Section(static_cast<uint8_t>(t), name);
}

// The stored result kinds of idempotency records, as the variant's index.
constexpr uint8_t kResultKinds = 3;

// --- records shared by two tables (a reservation or payment and the result an
// idempotency record stores) ------------------------------------------------------

void WriteReservation(SnapshotWriter& w, const Reservation& r, TimeUs base) {
  w.Int(r.user_id);
  w.Int(r.concert_id);
  w.Int(r.schedule_id);
  w.Int(r.token_id);
  w.U8(static_cast<uint8_t>(r.status));
  w.Count(r.seat_ids.size());
  SeatId prev = 0;
  for (SeatId s : r.seat_ids) {
    w.Delta(s, prev);
    prev = s;
  }
  w.Int(r.amount);
  w.Time(r.created_at, base);
  w.Time(r.expires_at, r.created_at);
  w.Time(r.ended_at, r.created_at);
  w.Int(r.payment_id);
}

Reservation ReadReservation(SnapshotReader& r, TimeUs base) {
  Reservation res;
  res.user_id = r.Int();
  res.concert_id = r.Int();
  res.schedule_id = r.Int();
  res.token_id = r.Int();
  res.status = r.Enum<ReservationStatus>("reservation status", 5);
  const size_t n = r.Count("reservation seats", 1);
  SeatId prev = 0;
  for (size_t i = 0; i < n && r.ok(); ++i) {
    prev = r.Delta(prev);
    res.seat_ids.push_back(prev);
  }
  res.amount = r.Int();
  res.created_at = r.Time("reservation created_at", base);
  res.expires_at = r.Time("reservation expires_at", res.created_at);
  res.ended_at = r.Time("reservation ended_at", res.created_at, /*never_ok=*/true);
  res.payment_id = r.Int();
  return res;
}

void WritePayment(SnapshotWriter& w, const Payment& p, TimeUs base) {
  w.Int(p.reservation_id);
  w.Int(p.user_id);
  w.Int(p.amount);
  w.U8(static_cast<uint8_t>(p.status));
  w.Time(p.paid_at, base);
  w.Int(p.balance_after);
}

Payment ReadPayment(SnapshotReader& r, TimeUs base) {
  Payment p;
  p.reservation_id = r.Int();
  p.user_id = r.Int();
  p.amount = r.Int();
  p.status = r.Enum<PaymentStatus>("payment status", 2);
  p.paid_at = r.Time("paid_at", base);
  p.balance_after = r.Int();
  return p;
}

void WriteCharge(SnapshotWriter& w, const ChargeResult& c) {
  w.Int(c.entry_id);
  w.Int(c.user_id);
  w.Int(c.amount);
  w.Int(c.balance);
  w.Time(c.at, 0);
}

ChargeResult ReadCharge(SnapshotReader& r) {
  ChargeResult c;
  c.entry_id = r.Int();
  c.user_id = r.Int();
  c.amount = r.Int();
  c.balance = r.Int();
  c.at = r.Time("charge at", 0);
  return c;
}

void WriteSale(SnapshotWriter& w, const SaleSettings& s) {
  w.Time(s.opens_at, 0);
  w.Int(s.queue_capacity);
  w.Int(s.admission_per_minute);
  w.Int(s.session_ttl_us);
  w.Int(s.hold_ttl_us);
  w.Int(s.max_seats_per_reservation);
  w.Int(s.max_seats_per_user);
  w.Bool(s.release_on_payment_failure);
  w.Int(s.abandon_timeout_us);
  w.Int(s.poll_interval_us);
}

// Reads and validates sale settings by CreateConcert's rules, so that the
// queue and every later command see settings they could have been given.
SaleSettings ReadSale(SnapshotReader& r, const Limits& limits) {
  SaleSettings s;
  s.opens_at = r.Time("opens_at", 0, /*never_ok=*/true);
  s.queue_capacity = r.Int("queue_capacity", 1, std::max<int64_t>(1, limits.queue_capacity_max));
  s.admission_per_minute = r.Int();
  if (s.admission_per_minute != kNoLimit) {
    r.Check(s.admission_per_minute >= 1 && s.admission_per_minute <= kAdmissionPerMinuteMax,
            "admission_per_minute is out of range");
  }
  s.session_ttl_us = r.Int("session_ttl_us", 1, kSaleTimeMaxUs);
  s.hold_ttl_us = r.Int("hold_ttl_us", 1, kSaleTimeMaxUs);
  s.max_seats_per_reservation = r.Int("max_seats_per_reservation", 1,
                                      std::max<int64_t>(1, limits.seats_per_reservation_max));
  s.max_seats_per_user = r.Int();
  r.Check(s.max_seats_per_user == kNoLimit || s.max_seats_per_user >= 1,
          "max_seats_per_user is out of range");
  s.release_on_payment_failure = r.Bool("release_on_payment_failure");
  s.abandon_timeout_us = r.Int("abandon_timeout_us", 1, kSaleTimeMaxUs);
  s.poll_interval_us = r.Int("poll_interval_us", 1, s.abandon_timeout_us);
  r.Check(s.opens_at <= kSaleTimeMaxUs, "opens_at is out of range");
  return s;
}

}  // namespace

// The engine's tables, one encode, decode and digest each (a nested class of
// Engine, so it reads the engine's members and no one else's).
struct Engine::State {
  // What the decoder knows besides the engine it fills.
  struct Restoring {
    std::unique_ptr<Engine> engine;
    std::vector<uint8_t> account_used;  // each wallet/revenue account names one owner
    int64_t seats_declared = 0;         // seats of the schedules read so far
    std::vector<TimerEntry> ticks;
  };

  static void EncodeBody(const Engine& e, SnapshotWriter& w);
  static void EncodeConfig(const Engine& e, SnapshotWriter& w);
  static void EncodeUsers(const Engine& e, SnapshotWriter& w);
  static void EncodeConcerts(const Engine& e, SnapshotWriter& w);
  static void EncodeTokens(const Engine& e, SnapshotWriter& w);
  static void EncodeReservations(const Engine& e, SnapshotWriter& w);
  static void EncodePayments(const Engine& e, SnapshotWriter& w);
  static void EncodeUserSeats(const Engine& e, SnapshotWriter& w);
  static void EncodeIdempotency(const Engine& e, SnapshotWriter& w);

  static absl::Status DecodeBody(SnapshotReader& r, Restoring& d);
  static absl::Status DecodeConfig(SnapshotReader& r, Restoring& d);
  static void DecodeUsers(SnapshotReader& r, Restoring& d);
  static void DecodeConcerts(SnapshotReader& r, Restoring& d);
  static void DecodeTokens(SnapshotReader& r, Restoring& d);
  static void DecodeReservations(SnapshotReader& r, Restoring& d);
  static void DecodePayments(SnapshotReader& r, Restoring& d);
  static void DecodeUserSeats(SnapshotReader& r, Restoring& d);
  static void DecodeIdempotency(SnapshotReader& r, Restoring& d);
  static std::unique_ptr<IdempotencyRecord> DecodeIdempotencyRecord(SnapshotReader& r,
                                                                    const Engine& e);
  // Rebuilds what is an index of the stored state (snapshot.h lists it) and
  // checks every cross-reference the engine relies on without checking.
  static void Rebuild(SnapshotReader& r, Restoring& d);
  static void CheckPayments(SnapshotReader& r, Engine& e);
  static void RebuildReservationIndexes(SnapshotReader& r, Engine& e);
  static void RestoreQueues(SnapshotReader& r, Engine& e);
  static void RestoreTimers(SnapshotReader& r, Restoring& d);

  static void DigestUsers(const Engine& e, Digest& d);
  static void DigestConcerts(const Engine& e, Digest& d);
  static void DigestTokens(const Engine& e, Digest& d);
  static void DigestReservations(const Engine& e, Digest& d);
  static void DigestPayments(const Engine& e, Digest& d);
  static void DigestUserSeats(const Engine& e, Digest& d);
  static void DigestIdempotency(const Engine& e, Digest& d);

  // user_seats_ in key order (a hash map has none of its own).
  static std::vector<std::pair<std::pair<UserId, ConcertId>, int64_t>> SortedUserSeats(
      const Engine& e);
  // The ids of the idempotency records, ascending.
  static std::vector<int64_t> SortedIdempotencyIds(const Engine& e);
};

// --- the body, section by section ---------------------------------------------------

void Engine::EncodeState(SnapshotWriter& w, Seq* journal_seq) {
  std::lock_guard<std::mutex> lock(mu_);
  State::EncodeBody(*this, w);
  if (journal_seq != nullptr) *journal_seq = journal_seq_;
}

void Engine::State::EncodeBody(const Engine& e, SnapshotWriter& w) {
  static_assert(std::variant_size_v<decltype(IdempotencyRecord::result)> == kResultKinds,
                "new idempotency result kind: add it to the snapshot");
#if defined(__GLIBCXX__) && defined(__x86_64__)
  // The engine's members and records, as this file stores them (layouts of
  // libstdc++ on x86-64 with Debian's Abseil): a new member must be stored
  // here, or rebuilt, or named in snapshot.h as not part of the state
  // (Engine::sink_); then update the size. (936: includes id_, the engine's
  // process-local identity, which is not state, live_tokens_, rebuilt from the
  // tokens, and batch_scratch_, a reused buffer.)
  static_assert(sizeof(Engine) == 936, "new Engine member: add it to the snapshot");
  static_assert(sizeof(Concert) == 304, "new Engine::Concert member");
  static_assert(sizeof(User) == 56, "new Engine::User member");
  static_assert(sizeof(IdempotencyRecord) == 184, "new IdempotencyRecord member");
#endif
  Section(w, Tag::kConfig);
  EncodeConfig(e, w);
  Section(w, Tag::kClock);
  w.Time(e.clock_, 0);
  w.Int(e.journal_seq_);
  Section(w, Tag::kAccounts);
  e.ledger_.EncodeAccounts(w);
  Section(w, Tag::kUsers);
  EncodeUsers(e, w);
  Section(w, Tag::kConcerts);
  EncodeConcerts(e, w);  // with their seat maps and queues
  Section(w, Tag::kTokens);
  EncodeTokens(e, w);
  Section(w, Tag::kReservations);
  EncodeReservations(e, w);
  Section(w, Tag::kPayments);
  EncodePayments(e, w);
  Section(w, Tag::kHistory);
  e.ledger_.EncodeHistory(w);
  Section(w, Tag::kSeats);
  for (const auto& s : e.schedules_) s->EncodeSeats(w);
  Section(w, Tag::kUserSeats);
  EncodeUserSeats(e, w);
  Section(w, Tag::kIdempotency);
  EncodeIdempotency(e, w);
  Section(w, Tag::kTicks);
  e.timer_.EncodeAdmissionTicks(w, e.clock_);
  Section(w, Tag::kEvents);
  e.events_.Encode(w);
  Section(w, Tag::kEnd);
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::DecodeState(SnapshotReader& r) {
  State::Restoring d;
  if (absl::Status s = State::DecodeBody(r, d); !s.ok()) return s;
  return std::move(d.engine);
}

absl::Status Engine::State::DecodeBody(SnapshotReader& r, Restoring& d) {
  Section(r, Tag::kConfig, "config");
  if (absl::Status s = DecodeConfig(r, d); !s.ok()) return s;
  Engine& e = *d.engine;
  // Nobody else can see the engine yet; the lock is for form (and annotations).
  std::lock_guard<std::mutex> lock(e.mu_);
  Section(r, Tag::kClock, "clock");
  e.clock_ = r.Time("clock", 0);
  e.journal_seq_ = r.Int("journal seq", 0, kSnapshotTimeLimit);
  Section(r, Tag::kAccounts, "accounts");
  e.ledger_.DecodeAccounts(r);
  d.account_used.assign(e.ledger_.account_count(), 0);
  Section(r, Tag::kUsers, "users");
  DecodeUsers(r, d);
  Section(r, Tag::kConcerts, "concerts");
  DecodeConcerts(r, d);
  Section(r, Tag::kTokens, "tokens");
  DecodeTokens(r, d);
  Section(r, Tag::kReservations, "reservations");
  DecodeReservations(r, d);
  Section(r, Tag::kPayments, "payments");
  DecodePayments(r, d);
  Section(r, Tag::kHistory, "history");
  e.ledger_.DecodeHistory(r, static_cast<int64_t>(e.users_.size()),
                          static_cast<int64_t>(e.reservations_.size()), e.clock_);
  Section(r, Tag::kSeats, "seats");
  for (const auto& s : e.schedules_) {
    if (!r.ok()) break;
    s->DecodeSeats(r, static_cast<int64_t>(e.reservations_.size()));
  }
  Section(r, Tag::kUserSeats, "user seats");
  DecodeUserSeats(r, d);
  Section(r, Tag::kIdempotency, "idempotency");
  DecodeIdempotency(r, d);
  Section(r, Tag::kTicks, "admission ticks");
  d.ticks =
      HoldTimer::DecodeAdmissionTicks(r, e.clock_, static_cast<int64_t>(e.concerts_.size()));
  Section(r, Tag::kEvents, "events");
  e.events_.Decode(r, e.clock_);
  Section(r, Tag::kEnd, "end");
  r.Check(r.AtEnd(), "bytes after the end of the body");
  if (!r.ok()) return r.status();
  Rebuild(r, d);
  return r.status();
}

// --- config and users -------------------------------------------------------------

void Engine::State::EncodeConfig(const Engine& e, SnapshotWriter& w) {
  const Limits& limits = e.config_.limits;
#define BOXOFFICE_X(field) w.Int(limits.field);
  BOXOFFICE_SNAPSHOT_LIMITS(BOXOFFICE_X)
#undef BOXOFFICE_X
  w.Var(e.config_.seed);
}

absl::Status Engine::State::DecodeConfig(SnapshotReader& r, Restoring& d) {
  EngineConfig config;
#define BOXOFFICE_X(field) config.limits.field = r.Int();
  BOXOFFICE_SNAPSHOT_LIMITS(BOXOFFICE_X)
#undef BOXOFFICE_X
  config.seed = r.Var();
  r.Check(config.limits.idempotency_ttl_us >= 0 &&
              config.limits.idempotency_ttl_us < kSnapshotTimeLimit,
          "idempotency_ttl_us is out of range");
  // Every engine that saves a snapshot was given limits that pass ValidateLimits
  // (the bindings check them); others are damage, not a config to run with.
  if (absl::Status s = ValidateLimits(config.limits); r.ok() && !s.ok()) {
    r.Check(false, absl::StrCat("the limits are out of range: ", s.message()));
  }
  if (!r.ok()) return r.status();
  d.engine = std::make_unique<Engine>(config);
  return absl::OkStatus();
}

void Engine::State::EncodeUsers(const Engine& e, SnapshotWriter& w) {
  w.Count(e.users_.size());
  AccountId prev_account = 0;
  for (const User& u : e.users_) {
    w.Delta(u.account, prev_account);
    prev_account = u.account;
  }
}

void Engine::State::DecodeUsers(SnapshotReader& r, Restoring& d) {
  Engine& e = *d.engine;
  const size_t n = r.Count("users", 1);
  e.users_.resize(n);
  e.live_tokens_.Reserve(static_cast<UserId>(n));
  AccountId account = 0;
  for (size_t i = 0; i < n && r.ok(); ++i) {
    account = r.Delta(account);
    if (!r.Check(account >= 1 && static_cast<size_t>(account) < d.account_used.size() &&
                     e.ledger_.kind(account) == AccountKind::kWallet &&
                     !d.account_used[static_cast<size_t>(account)],
                 absl::StrCat("user ", i + 1, " has an invalid wallet account"))) {
      break;
    }
    d.account_used[static_cast<size_t>(account)] = 1;
    e.users_[i].account = account;
  }
}

// --- concerts (with their schedules' seat maps and their queues) --------------------

// Schedules are written inside their concert and get their ids (and seat ids)
// back by position: the engine hands them out concert by concert.
void Engine::State::EncodeConcerts(const Engine& e, SnapshotWriter& w) {
  w.Count(e.concerts_.size());
  TimeUs prev_created = 0;
  ScheduleId next_schedule = 1;
  SeatId next_seat = 1;
  for (const auto& c : e.concerts_) {
    w.Str(c->title);
    w.Str(c->artist);
    w.Str(c->venue);
    WriteSale(w, c->sale);
    w.Time(c->created_at, prev_created);
    prev_created = c->created_at;
    w.Int(c->revenue_account);
    w.Count(c->schedules.size());
    for (ScheduleId sid : c->schedules) {
      const SeatInventory& s = *e.schedules_[static_cast<size_t>(sid - 1)];
      BOXOFFICE_ASSERT(sid == next_schedule && s.first_seat_id() == next_seat);
      ++next_schedule;
      next_seat += s.seat_count();
      s.EncodeSeatMap(w);
    }
    c->queue->Encode(w);
  }
}

void Engine::State::DecodeConcerts(SnapshotReader& r, Restoring& d) {
  Engine& e = *d.engine;
  const Limits& limits = e.config_.limits;
  const size_t n = r.Count("concerts", 24);
  e.concerts_.reserve(n);
  TimeUs prev_created = 0;
  for (size_t i = 0; i < n && r.ok(); ++i) {
    auto c = std::make_unique<Concert>();
    c->id = static_cast<ConcertId>(i + 1);
    c->title = r.Str("title");
    c->artist = r.Str("artist");
    c->venue = r.Str("venue");
    c->sale = ReadSale(r, limits);
    c->created_at = r.Past("concert created_at", prev_created, e.clock_);
    prev_created = c->created_at;
    const AccountId revenue = r.Int();
    if (!r.Check(revenue >= 1 && static_cast<size_t>(revenue) < d.account_used.size() &&
                     e.ledger_.kind(revenue) == AccountKind::kRevenue &&
                     !d.account_used[static_cast<size_t>(revenue)],
                 absl::StrCat("concert ", c->id, " has an invalid revenue account"))) {
      return;
    }
    d.account_used[static_cast<size_t>(revenue)] = 1;
    c->revenue_account = revenue;

    const size_t schedules = r.Count("schedules", 4);
    r.Check(schedules >= 1, "a concert without schedules");
    for (size_t k = 0; k < schedules && r.ok(); ++k) {
      const auto sid = static_cast<ScheduleId>(e.schedules_.size() + 1);
      std::unique_ptr<SeatInventory> inventory = SeatInventory::DecodeSeatMap(
          r, sid, c->id, e.next_seat_id_, limits, d.seats_declared);
      if (inventory == nullptr) return;
      e.next_seat_id_ += inventory->seat_count();
      for (const SeatInventory::Section& s : inventory->sections()) {
        if (std::find(c->grades.begin(), c->grades.end(), s.spec.grade) == c->grades.end()) {
          c->grades.push_back(s.spec.grade);
        }
      }
      e.schedules_.push_back(std::move(inventory));
      c->schedules.push_back(sid);
    }
    if (!r.ok()) return;
    QueueSettings q;
    q.queue_capacity = c->sale.queue_capacity;
    q.admission_per_minute = c->sale.admission_per_minute;
    q.session_ttl_us = c->sale.session_ttl_us;
    q.abandon_timeout_us = c->sale.abandon_timeout_us;
    q.poll_interval_us = c->sale.poll_interval_us;
    q.opens_at = c->sale.opens_at;
    // The constructor may schedule the opening; RestoreTimers redoes the timer.
    c->queue = std::make_unique<AdmissionQueue>(c->id, q, c->created_at, &e.tokens_, &e.timer_,
                                                &e.events_, &e.live_tokens_);
    c->queue->Decode(r, e.clock_);
    e.concerts_.push_back(std::move(c));
  }
}

// --- queue tokens -------------------------------------------------------------------

// Format version 2: a token's times by its state (version 1 wrote all five
// for every token, expires_at included, which follows from activated_at).
void Engine::State::EncodeTokens(const Engine& e, SnapshotWriter& w) {
  w.Count(e.tokens_.size() - 1);  // index 0 is the "none" token every engine has
  TimeUs prev_joined = 0;
  for (size_t i = 1; i < e.tokens_.size(); ++i) {
    const TokenRecord& t = e.tokens_[i];
    w.Int(t.user_id);
    w.Int(t.concert_id);
    e.concerts_[t.concert_id - 1]->queue->EncodeToken(w, t, prev_joined);
    prev_joined = t.joined_at;
  }
}

void Engine::State::DecodeTokens(SnapshotReader& r, Restoring& d) {
  Engine& e = *d.engine;
  const size_t n = r.Count("tokens", r.version() == 1 ? 9 : 7);
  // Ids and join sequences are stored in 32 bits (TokenRecord).
  if (!r.Check(static_cast<int64_t>(n) <= kCompactIdMax &&
                   static_cast<int64_t>(e.users_.size()) <= kCompactIdMax &&
                   static_cast<int64_t>(e.concerts_.size()) <= kCompactIdMax,
               "more tokens, users or concerts than an engine creates")) {
    return;
  }
  e.tokens_.reserve(n + 1);
  const auto users = static_cast<int64_t>(e.users_.size());
  const auto concerts = static_cast<int64_t>(e.concerts_.size());
  TimeUs prev_joined = 0;
  for (size_t i = 1; i <= n && r.ok(); ++i) {
    TokenRecord t;
    t.user_id = static_cast<uint32_t>(r.Int("token user", 1, users));
    t.concert_id = static_cast<uint32_t>(r.Int("token concert", 1, concerts));
    if (!r.ok()) return;
    AdmissionQueue& q = *e.concerts_[t.concert_id - 1]->queue;
    if (!q.DecodeToken(r, t, static_cast<TokenId>(i), static_cast<int64_t>(n), prev_joined,
                       e.clock_)) {
      return;
    }
    prev_joined = t.joined_at;
    e.tokens_.push_back(t);
  }
}

// --- reservations and payments -----------------------------------------------------

// Both are tables whose ids are their positions + 1, each row's time (`at`)
// written as a delta from the previous row's.
template <typename Row>
void WriteRows(SnapshotWriter& w, const std::vector<Row>& rows, TimeUs Row::*at,
               void (*write)(SnapshotWriter&, const Row&, TimeUs)) {
  w.Count(rows.size());
  TimeUs prev = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    BOXOFFICE_ASSERT(rows[i].id == static_cast<int64_t>(i + 1));
    write(w, rows[i], prev);
    prev = rows[i].*at;
  }
}

// Reads the rows WriteRows wrote (each at least `min_bytes`), giving each its
// id; `keep` checks a row and returns false to stop before keeping it.
template <typename Row, typename Keep>
void ReadRows(SnapshotReader& r, std::vector<Row>& rows, absl::string_view what,
              size_t min_bytes, TimeUs Row::*at, Row (*read)(SnapshotReader&, TimeUs),
              Keep&& keep) {
  const size_t n = r.Count(what, min_bytes);
  rows.reserve(n);
  TimeUs prev = 0;
  for (size_t i = 0; i < n && r.ok(); ++i) {
    Row row = read(r, prev);
    row.id = static_cast<int64_t>(i + 1);
    prev = row.*at;
    if (!keep(row)) return;
    rows.push_back(std::move(row));
  }
}

void Engine::State::EncodeReservations(const Engine& e, SnapshotWriter& w) {
  WriteRows(w, e.reservations_, &Reservation::created_at, WriteReservation);
}

void Engine::State::DecodeReservations(SnapshotReader& r, Restoring& d) {
  Engine& e = *d.engine;
  ReadRows(r, e.reservations_, "reservations", 11, &Reservation::created_at, ReadReservation,
           [&](const Reservation& res) {
             r.Check(res.created_at <= e.clock_ && res.ended_at <= e.clock_,
                     "a reservation was made or ended after the clock");
             if (!r.ok()) return false;
             const bool valid =
                 res.user_id >= 1 && res.user_id <= static_cast<int64_t>(e.users_.size()) &&
                 res.concert_id >= 1 &&
                 res.concert_id <= static_cast<int64_t>(e.concerts_.size()) &&
                 res.schedule_id >= 1 &&
                 res.schedule_id <= static_cast<int64_t>(e.schedules_.size()) &&
                 e.schedules_[static_cast<size_t>(res.schedule_id - 1)]->concert_id() ==
                     res.concert_id &&
                 res.token_id >= 0 && res.token_id < static_cast<int64_t>(e.tokens_.size()) &&
                 res.payment_id >= 0 &&
                 (res.status == ReservationStatus::kPending) == (res.ended_at == kNever);
             return r.Check(valid,
                            absl::StrCat("reservation ", res.id, " has an invalid reference"));
           });
}

void Engine::State::EncodePayments(const Engine& e, SnapshotWriter& w) {
  WriteRows(w, e.payments_, &Payment::paid_at, WritePayment);
}

void Engine::State::DecodePayments(SnapshotReader& r, Restoring& d) {
  Engine& e = *d.engine;
  ReadRows(r, e.payments_, "payments", 6, &Payment::paid_at, ReadPayment, [&](const Payment& p) {
    r.Check(p.paid_at <= e.clock_, "a payment was made after the clock");
    r.Check(p.reservation_id >= 1 &&
                p.reservation_id <= static_cast<int64_t>(e.reservations_.size()),
            absl::StrCat("payment ", p.id, " names no reservation"));
    return true;  // kept, as the loop stops once the reader has failed
  });
}

// --- per-user seat counts and idempotency records ----------------------------------

std::vector<std::pair<std::pair<UserId, ConcertId>, int64_t>> Engine::State::SortedUserSeats(
    const Engine& e) {
  std::vector<std::pair<std::pair<UserId, ConcertId>, int64_t>> seats(e.user_seats_.begin(),
                                                                      e.user_seats_.end());
  std::sort(seats.begin(), seats.end());
  return seats;
}

void Engine::State::EncodeUserSeats(const Engine& e, SnapshotWriter& w) {
  const auto user_seats = SortedUserSeats(e);
  w.Count(user_seats.size());
  for (const auto& [key, n] : user_seats) {
    w.Int(key.first);
    w.Int(key.second);
    w.Int(n);
  }
}

void Engine::State::DecodeUserSeats(SnapshotReader& r, Restoring& d) {
  Engine& e = *d.engine;
  const size_t n = r.Count("user seat counts", 3);
  std::pair<UserId, ConcertId> prev{0, 0};
  for (size_t i = 0; i < n && r.ok(); ++i) {
    const UserId user = r.Int("user seats: user", 1, static_cast<int64_t>(e.users_.size()));
    const ConcertId concert =
        r.Int("user seats: concert", 1, static_cast<int64_t>(e.concerts_.size()));
    const int64_t count = r.Int("user seats: count", 1, kSnapshotTimeLimit);
    const std::pair<UserId, ConcertId> key{user, concert};
    if (!r.Check(key > prev, "user seat counts are not in order")) break;
    prev = key;
    e.user_seats_.emplace(key, count);
  }
}

std::vector<int64_t> Engine::State::SortedIdempotencyIds(const Engine& e) {
  std::vector<int64_t> ids;
  ids.reserve(e.idempotency_.size());
  for (const auto& [id, record] : e.idempotency_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  return ids;
}

void Engine::State::EncodeIdempotency(const Engine& e, SnapshotWriter& w) {
  w.Int(e.next_idempotency_id_);
  const std::vector<int64_t> ids = SortedIdempotencyIds(e);
  w.Count(ids.size());
  int64_t prev_id = 0;
  for (int64_t id : ids) {
    const IdempotencyRecord& rec = *e.idempotency_.at(id);
    w.Delta(id, prev_id);
    prev_id = id;
    w.Str(rec.index_key);
    w.Fixed64(rec.fingerprint);
    w.Time(rec.expires_at, e.clock_);
    w.U8(static_cast<uint8_t>(rec.result.index()));
    if (const auto* r = std::get_if<Reservation>(&rec.result)) {
      w.Int(r->id);
      WriteReservation(w, *r, 0);
    } else if (const auto* c = std::get_if<ChargeResult>(&rec.result)) {
      WriteCharge(w, *c);
    } else {
      const Payment& p = std::get<Payment>(rec.result);
      w.Int(p.id);
      WritePayment(w, p, 0);
    }
  }
}

void Engine::State::DecodeIdempotency(SnapshotReader& r, Restoring& d) {
  Engine& e = *d.engine;
  e.next_idempotency_id_ = r.Int("next idempotency id", 1, kSnapshotTimeLimit);
  const size_t n = r.Count("idempotency records", 13);
  int64_t id = 0;
  for (size_t i = 0; i < n && r.ok(); ++i) {
    // Ids ascend and stay below the next id (no overflow on the way).
    id += r.Int("idempotency record id step", 1, e.next_idempotency_id_ - 1 - id);
    std::unique_ptr<IdempotencyRecord> rec = DecodeIdempotencyRecord(r, e);
    if (rec == nullptr ||
        !r.Check(e.idempotency_index_.emplace(rec->index_key, id).second,
                 "an idempotency key is recorded twice")) {
      return;
    }
    e.idempotency_.emplace(id, std::move(rec));
  }
}

// One record after its id; nullptr when the reader has failed.
std::unique_ptr<Engine::IdempotencyRecord> Engine::State::DecodeIdempotencyRecord(
    SnapshotReader& r, const Engine& e) {
  auto rec = std::make_unique<IdempotencyRecord>();
  rec->index_key = r.Str("idempotency key");
  rec->fingerprint = r.Fixed64();
  rec->expires_at = r.Time("idempotency expires_at", e.clock_);
  const uint8_t kind = r.Enum<uint8_t>("idempotency result kind", kResultKinds);
  if (kind == 0) {
    const ReservationId rid = r.Int();
    Reservation res = ReadReservation(r, 0);
    res.id = rid;
    rec->result = std::move(res);
  } else if (kind == 1) {
    rec->result = ReadCharge(r);
  } else {
    const PaymentId pid = r.Int();
    Payment p = ReadPayment(r, 0);
    p.id = pid;
    rec->result = p;
  }
  if (!r.ok()) return nullptr;
  // The key is "<user>:<op>:<key>" (engine.cc), op 1 hold, 2 charge, 3 pay:
  // the lookup by op must find the result kind it expects.
  const std::vector<absl::string_view> parts =
      absl::StrSplit(rec->index_key, absl::MaxSplits(':', 2));
  int64_t user = 0;
  int op = 0;
  const bool key_ok = parts.size() == 3 && absl::SimpleAtoi(parts[0], &user) && user >= 1 &&
                      user <= static_cast<int64_t>(e.users_.size()) &&
                      absl::SimpleAtoi(parts[1], &op) && op == kind + 1 && !parts[2].empty();
  if (!r.Check(key_ok, "an idempotency key does not name its user and operation") ||
      !r.Check(rec->expires_at >= e.clock_, "an idempotency record outlived its expiry")) {
    return nullptr;
  }
  return rec;
}

// --- what is rebuilt -------------------------------------------------------------------

void Engine::State::Rebuild(SnapshotReader& r, Restoring& d) {
  Engine& e = *d.engine;
  CheckPayments(r, e);
  if (!r.ok()) return;
  RebuildReservationIndexes(r, e);
  if (!r.ok()) return;
  for (const Payment& p : e.payments_) {
    const Reservation& res = e.reservations_[static_cast<size_t>(p.reservation_id - 1)];
    ++e.concerts_[static_cast<size_t>(res.concert_id - 1)]->payments;
  }
  for (EntryId id = 1; id <= e.ledger_.entry_count(); ++id) {
    const HistoryEntry& h = e.ledger_.entry(id);
    e.users_[static_cast<size_t>(h.user_id - 1)].history.push_back(h.id);
  }
  RestoreQueues(r, e);
  if (!r.ok()) return;
  RestoreTimers(r, d);
}

// Payments <-> reservations: Refund indexes payments_ by the reservation's
// payment_id and asserts the payment matches.
void Engine::State::CheckPayments(SnapshotReader& r, Engine& e) {
  for (const Payment& p : e.payments_) {
    const Reservation& res = e.reservations_[static_cast<size_t>(p.reservation_id - 1)];
    const bool ok =
        res.payment_id == p.id && res.user_id == p.user_id &&
        (p.status == PaymentStatus::kSucceeded
             ? res.status == ReservationStatus::kConfirmed && res.amount == p.amount
             : res.status == ReservationStatus::kRefunded);
    if (!r.Check(ok, absl::StrCat("payment ", p.id, " does not match its reservation"))) return;
  }
}

// Checks each reservation's payment, revenue and seats, and rebuilds the
// concerts' counts per status and the users' reservation lists.
void Engine::State::RebuildReservationIndexes(SnapshotReader& r, Engine& e) {
  std::vector<Won> paid(e.concerts_.size(), 0);
  for (Reservation& res : e.reservations_) {
    const bool has_payment = res.status == ReservationStatus::kConfirmed ||
                             res.status == ReservationStatus::kRefunded;
    const bool payment_ok =
        has_payment ? res.payment_id >= 1 &&
                          res.payment_id <= static_cast<int64_t>(e.payments_.size()) &&
                          e.payments_[static_cast<size_t>(res.payment_id - 1)].reservation_id ==
                              res.id
                    : res.payment_id == 0;
    if (!r.Check(payment_ok, absl::StrCat("reservation ", res.id, " has a wrong payment"))) return;
    Won& concert_paid = paid[static_cast<size_t>(res.concert_id - 1)];
    if (res.status == ReservationStatus::kConfirmed &&
        !r.Check(!__builtin_add_overflow(concert_paid, res.amount, &concert_paid),
                 "revenue overflows")) {
      return;
    }
    // Live reservations: seats in their schedule, amount = the sum of prices
    // (checked here without overflow, so CheckInvariants' sum cannot overflow).
    if (res.status == ReservationStatus::kPending || res.status == ReservationStatus::kConfirmed) {
      const SeatInventory& s = *e.schedules_[static_cast<size_t>(res.schedule_id - 1)];
      Won amount = 0;
      for (SeatId seat : res.seat_ids) {
        if (!r.Check(s.Contains(seat) && !__builtin_add_overflow(amount, s.price(seat), &amount),
                     absl::StrCat("reservation ", res.id, " names a seat outside its schedule"))) {
          return;
        }
      }
      if (!r.Check(amount == res.amount, absl::StrCat("amount of reservation ", res.id))) return;
      // A seat listed twice would pass CheckInvariants and be released twice.
      SeatList sorted = res.seat_ids;
      std::sort(sorted.begin(), sorted.end());
      if (!r.Check(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end(),
                   absl::StrCat("reservation ", res.id, " lists a seat twice"))) {
        return;
      }
    }
    Concert& c = *e.concerts_[static_cast<size_t>(res.concert_id - 1)];
    ++c.reservations_by_status[static_cast<int>(res.status)];
    e.users_[static_cast<size_t>(res.user_id - 1)].reservations.push_back(res.id);
  }
}

// Each queue's join order, pre-queue, rank bitmap and the live tokens per
// user, from the tokens (AdmissionQueue::RestoreOrder, RestoreToken, RestoreEnd).
void Engine::State::RestoreQueues(SnapshotReader& r, Engine& e) {
  std::vector<size_t> sequenced(e.concerts_.size(), 0);
  for (size_t i = 1; i < e.tokens_.size(); ++i) {
    const TokenRecord& t = e.tokens_[i];
    if (t.join_seq != TokenRecord::kNoJoinSeq) ++sequenced[t.concert_id - 1];
  }
  for (size_t k = 0; k < e.concerts_.size(); ++k) e.concerts_[k]->queue->RestoreOrder(sequenced[k]);
  for (size_t i = 1; i < e.tokens_.size(); ++i) {
    AdmissionQueue& q = *e.concerts_[e.tokens_[i].concert_id - 1]->queue;
    if (!q.RestoreToken(r, static_cast<TokenId>(i))) return;
  }
  for (const auto& c : e.concerts_) {
    if (!c->queue->RestoreEnd(r)) return;
  }
}

// Every deadline but the admission ticks follows from what it times out.
void Engine::State::RestoreTimers(SnapshotReader& r, Restoring& d) {
  Engine& e = *d.engine;
  HoldTimer& timer = e.timer_;
  timer.Clear();
  auto schedule = [&](TimeUs at, TimerKind kind, int64_t id, absl::string_view what) {
    if (r.Check(at >= e.clock_, absl::StrCat(what, " ", id, " has a deadline in the past"))) {
      timer.Schedule(at, kind, id);
    }
  };
  for (const auto& c : e.concerts_) {
    if (c->queue->open()) continue;
    if (!r.Check(c->sale.opens_at != kNever,
                 absl::StrCat("the queue of concert ", c->id, " is closed with no opening"))) {
      return;
    }
    schedule(c->sale.opens_at, TimerKind::kQueueOpen, c->id, "the opening of concert");
  }
  for (const Reservation& res : e.reservations_) {
    if (res.status == ReservationStatus::kPending) {
      schedule(res.expires_at, TimerKind::kHoldExpiry, res.id, "reservation");
    }
  }
  for (size_t i = 1; i < e.tokens_.size(); ++i) {
    const TokenRecord& t = e.tokens_[i];
    if (t.status == TokenStatus::kActive) {
      schedule(e.concerts_[t.concert_id - 1]->queue->Times(t).expires_at,
               TimerKind::kSessionExpiry, static_cast<TokenId>(i), "the session of token");
    }
  }
  for (const auto& c : e.concerts_) {
    const TimeUs front = c->queue->RebuildAbandonLine();  // schedules it
    if (!r.Check(front == kNever || front >= e.clock_,
                 absl::StrCat("the abandon timeout of concert ", c->id, " is in the past"))) {
      return;
    }
  }
  for (const auto& [id, rec] : e.idempotency_) {
    schedule(rec->expires_at, TimerKind::kIdempotencyExpiry, id, "idempotency record");
  }
  for (const TimerEntry& t : d.ticks) {
    if (!r.Check(timer.Restore(t), "an admission tick is stored twice")) return;
  }
}

// --- the state hash ------------------------------------------------------------------

uint64_t Engine::StateHash() {
  std::lock_guard<std::mutex> lock(mu_);
  Digest d;
  d.Mix(clock_);
  // The live deadlines only: stale entries (hold_timer.h) are not state, and a
  // snapshot restores none.
  timer_.Digest(d, [this](const TimerEntry& e) { return TimerLive(e); });
  State::DigestUsers(*this, d);
  State::DigestConcerts(*this, d);
  for (const auto& s : schedules_) s->Digest(d);
  State::DigestTokens(*this, d);
  State::DigestReservations(*this, d);
  State::DigestPayments(*this, d);
  ledger_.Digest(d);
  State::DigestUserSeats(*this, d);
  State::DigestIdempotency(*this, d);
  events_.Digest(d);
  return d.value();
}

void Engine::State::DigestUsers(const Engine& e, Digest& d) {
  for (const User& u : e.users_) {
    d.Mix(u.account);
    for (ReservationId r : u.reservations) d.Mix(r);
    for (EntryId h : u.history) d.Mix(h);
  }
}

void Engine::State::DigestConcerts(const Engine& e, Digest& d) {
  for (const auto& c : e.concerts_) {
    d.Mix(c->id);
    d.Mix(c->title);
    d.Mix(c->artist);
    d.Mix(c->venue);
    for (int64_t n : c->reservations_by_status) d.Mix(n);
    d.Mix(c->payments);
    c->queue->Digest(d);
  }
}

// Each token as a user sees it (the same words as when the token stored all of
// them, so a state's hash does not depend on the record's layout).
void Engine::State::DigestTokens(const Engine& e, Digest& d) {
  for (size_t id = 0; id < e.tokens_.size(); ++id) {
    const TokenRecord& t = e.tokens_[id];
    const TokenTimes times =
        t.concert_id == 0 ? TokenTimes{} : e.concerts_[t.concert_id - 1]->queue->Times(t);
    d.Mix(static_cast<int64_t>(id));
    d.Mix(static_cast<int64_t>(t.user_id));
    d.Mix(static_cast<int64_t>(t.status));
    d.Mix(static_cast<int64_t>(t.end));
    d.Mix(t.JoinSeq());
    d.Mix(t.joined_at);
    d.Mix(t.last_seen_at);
    d.Mix(times.activated_at);
    d.Mix(times.expires_at);
    d.Mix(times.ended_at);
  }
}

void Engine::State::DigestReservations(const Engine& e, Digest& d) {
  for (const Reservation& r : e.reservations_) {
    d.Mix(r.id);
    d.Mix(static_cast<int64_t>(r.status));
    for (SeatId s : r.seat_ids) d.Mix(s);
    d.Mix(r.amount);
    d.Mix(r.created_at);
    d.Mix(r.expires_at);
    d.Mix(r.ended_at);
    d.Mix(r.payment_id);
  }
}

void Engine::State::DigestPayments(const Engine& e, Digest& d) {
  for (const Payment& p : e.payments_) {
    d.Mix(p.id);
    d.Mix(static_cast<int64_t>(p.status));
    d.Mix(p.amount);
  }
}

void Engine::State::DigestUserSeats(const Engine& e, Digest& d) {
  for (const auto& [key, n] : SortedUserSeats(e)) {
    d.Mix(key.first);
    d.Mix(key.second);
    d.Mix(n);
  }
}

void Engine::State::DigestIdempotency(const Engine& e, Digest& d) {
  for (int64_t id : SortedIdempotencyIds(e)) {
    const IdempotencyRecord& rec = *e.idempotency_.at(id);
    d.Mix(id);
    d.Mix(rec.index_key);
    d.Mix(static_cast<int64_t>(rec.fingerprint));
    d.Mix(rec.expires_at);
  }
}

}  // namespace boxoffice
