// Snapshot: see snapshot.h for the format, what is stored, what is rebuilt
// and why. Encoding and decoding are written side by side, section by
// section, in the same order; the decoder trusts nothing: every count is
// checked against the bytes left before it allocates, every id against what
// it names, and every index the engine later uses without checking (the
// timer's deadlines, a queue's order, the payment of a reservation) is either
// rebuilt here from the primary state or cross-checked, so that a damaged
// snapshot is an error and never an assertion or a crash later on.
#include "boxoffice/snapshot.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "boxoffice/assert.h"
#include "boxoffice/digest.h"
#include "boxoffice/errors.h"
#include "engine_internal.h"

namespace boxoffice {
namespace {

constexpr size_t kMagicBytes = 6;
constexpr size_t kHeaderBytes = kMagicBytes + 2 + 8;  // magic, version, body length
constexpr size_t kChecksumBytes = 8;
// Times and durations are accepted in [0, 2^62): any sum of two stays in int64.
constexpr int64_t kTimeLimit = int64_t{1} << 62;
// The bounds CreateConcert enforces on sale settings (limits.h).
constexpr int64_t kSaleTimeMaxUs = kTimeMaxUs;

// Tripwires: a new field in one of these records must be added to the
// snapshot (and then the expected size here). LP64 layouts.
static_assert(sizeof(Limits) == 18 * sizeof(int64_t), "new Limits field: add it to the snapshot");
static_assert(sizeof(EngineConfig) == sizeof(Limits) + 8, "new EngineConfig field");
static_assert(sizeof(SaleSettings) == 80, "new SaleSettings field: add it to the snapshot");
// 40: the abandon line links (slot.wait) are rebuilt, not saved; the session index
// (slot.session) is rebuilt with the sessions, from the times saved with the token.
static_assert(sizeof(QueueToken) == 40, "new QueueToken field: add it to the snapshot");
static_assert(sizeof(Event) == 72, "new Event field: add it to the snapshot");
static_assert(sizeof(HistoryEntry) == 56, "new HistoryEntry field: add it to the snapshot");
static_assert(sizeof(Payment) == 56, "new Payment field: add it to the snapshot");
static_assert(sizeof(ChargeResult) == 40, "new ChargeResult field: add it to the snapshot");
static_assert(sizeof(Reservation) == 128, "new Reservation field: add it to the snapshot");
static_assert(sizeof(TimerEntry) == 24, "new TimerEntry field");
static_assert(static_cast<int>(TimerKind::kIdempotencyExpiry) == 5, "new timer kind");

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

uint64_t ZigZag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
int64_t UnZigZag(uint64_t u) {
  return static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1));
}
// Wrapping arithmetic (no signed overflow whatever the input).
int64_t WrapSub(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b));
}
int64_t WrapAdd(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
}

void PutFixed(std::string& out, size_t at, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) {
    out[at + static_cast<size_t>(i)] = static_cast<char>((v >> (8 * i)) & 0xff);
  }
}
uint64_t GetFixed(absl::string_view in, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) {
    v |= static_cast<uint64_t>(static_cast<uint8_t>(in[at + static_cast<size_t>(i)])) << (8 * i);
  }
  return v;
}

uint64_t Checksum(absl::string_view covered) {
  Digest d;
  d.Mix(covered);
  return d.value();
}

// The stored result kinds of idempotency records, as the variant's index.
constexpr uint8_t kResultKinds = 3;

}  // namespace

// --- byte level ----------------------------------------------------------------

class SnapshotCodec::Writer {
 public:
  Writer() { out_.resize(kHeaderBytes); }  // the header is filled in by Finish

  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void Bool(bool v) { U8(v ? 1 : 0); }
  void Section(Tag t) { U8(static_cast<uint8_t>(t)); }
  void Var(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  void Count(size_t n) { Var(static_cast<uint64_t>(n)); }
  void Int(int64_t v) { Var(ZigZag(v)); }
  void Fixed64(uint64_t v) {
    const size_t at = out_.size();
    out_.resize(at + 8);
    PutFixed(out_, at, v, 8);
  }
  void Str(absl::string_view s) {
    Count(s.size());
    out_.append(s.data(), s.size());
  }
  // A time as a delta from `base` (close to it, so short); kNever is 0.
  void Time(TimeUs t, TimeUs base) {
    if (t == kNever) {
      Var(0);
    } else {
      Var(ZigZag(WrapSub(t, base)) + 1);
    }
  }

  std::string Finish() && {
    std::memcpy(out_.data(), kSnapshotMagic, kMagicBytes);
    PutFixed(out_, kMagicBytes, kSnapshotVersion, 2);
    PutFixed(out_, kMagicBytes + 2, out_.size() - kHeaderBytes, 8);
    const uint64_t sum = Checksum(out_);
    Fixed64(sum);
    return std::move(out_);
  }

 private:
  std::string out_;
};

// Reads the body. The first problem is kept (DATA_LOSS naming it and where);
// after it every read returns 0 and every count 0, so decoding winds down
// without allocating, and callers check ok() before using what they read as
// an index.
class SnapshotCodec::Reader {
 public:
  explicit Reader(absl::string_view body) : data_(body) {}

  bool ok() const { return status_.ok(); }
  const absl::Status& status() const { return status_; }
  size_t remaining() const { return data_.size() - pos_; }

  void Fail(absl::string_view what) {
    if (status_.ok()) {
      status_ = absl::DataLossError(
          absl::StrCat("damaged snapshot: ", what, " (body byte ", pos_, ")"));
    }
    pos_ = data_.size();
  }
  // Fails with `what` unless `cond`; returns cond.
  bool Check(bool cond, absl::string_view what) {
    if (!cond) Fail(what);
    return cond && ok();
  }

  uint8_t U8() {
    if (pos_ >= data_.size()) {
      Fail("unexpected end of the body");
      return 0;
    }
    return static_cast<uint8_t>(data_[pos_++]);
  }
  bool Bool(absl::string_view what) {
    const uint8_t v = U8();
    if (v > 1) Fail(absl::StrCat(what, " is not a boolean"));
    return v == 1;
  }
  template <typename E>
  E Enum(absl::string_view what, int count) {
    const uint8_t v = U8();
    if (v >= count) {
      Fail(absl::StrCat(what, " has an unknown value ", v));
      return E{};
    }
    return static_cast<E>(v);
  }
  void Section(Tag want, absl::string_view name) {
    const uint8_t got = U8();
    if (ok() && got != static_cast<uint8_t>(want)) {
      Fail(absl::StrCat("expected the ", name, " section, found tag ", got));
    }
  }
  uint64_t Var() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) {
        Fail("truncated varint");
        return 0;
      }
      const auto b = static_cast<uint8_t>(data_[pos_++]);
      if (shift == 63 && b > 1) {
        Fail("varint overflows 64 bits");
        return 0;
      }
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
    }
    return v;  // unreachable: the 10th byte either ends the varint or fails
  }
  int64_t Int() { return UnZigZag(Var()); }
  // An integer that must lie in [lo, hi].
  int64_t Int(absl::string_view what, int64_t lo, int64_t hi) {
    const int64_t v = Int();
    if (ok() && (v < lo || v > hi)) {
      Fail(absl::StrCat(what, " = ", v, " is outside [", lo, ", ", hi, "]"));
      return lo;
    }
    return v;
  }
  uint64_t Fixed64() {
    if (remaining() < 8) {
      Fail("unexpected end of the body");
      return 0;
    }
    const uint64_t v = GetFixed(data_, pos_, 8);
    pos_ += 8;
    return v;
  }
  // A number of items that each take at least `min_bytes` of what is left:
  // a count that cannot fit is damage, found before anything is allocated.
  size_t Count(absl::string_view what, size_t min_bytes) {
    const uint64_t n = Var();
    if (!ok()) return 0;
    if (n > remaining() / min_bytes) {
      Fail(absl::StrCat(what, ": ", n, " items of at least ", min_bytes,
                        " bytes do not fit in the ", remaining(), " bytes left"));
      return 0;
    }
    return static_cast<size_t>(n);
  }
  std::string Str(absl::string_view what) {
    const size_t n = Count(what, 1);
    if (!ok()) return {};
    std::string s(data_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  // A time written by Writer::Time with the same base; kNever only when
  // `never_ok`. Valid times lie in [0, 2^62).
  TimeUs Time(absl::string_view what, TimeUs base, bool never_ok = false) {
    const uint64_t v = Var();
    if (!ok()) return 0;
    if (v == 0) {
      if (!never_ok) Fail(absl::StrCat(what, " is missing"));
      return kNever;
    }
    const TimeUs t = WrapAdd(base, UnZigZag(v - 1));
    if (t < 0 || t >= kTimeLimit) {
      Fail(absl::StrCat(what, " = ", t, " is not a valid time"));
      return 0;
    }
    return t;
  }
  // A time when something happened: not after the engine's clock.
  TimeUs Past(absl::string_view what, TimeUs base, TimeUs clock, bool never_ok = false) {
    const TimeUs t = Time(what, base, never_ok);
    if (ok() && t > clock) Fail(absl::StrCat(what, " = ", t, " is after the clock ", clock));
    return t;
  }
  bool AtEnd() const { return pos_ == data_.size(); }

 private:
  absl::string_view data_;
  size_t pos_ = 0;
  absl::Status status_;
};

// What the decoder knows besides the engine it fills.
struct SnapshotCodec::Decoded {
  uint16_t version = kSnapshotVersion;  // of the bytes being read
  std::unique_ptr<Engine> engine;
  std::vector<uint8_t> account_used;  // each wallet/revenue account names one owner
  int64_t seats_declared = 0;         // seats of the schedules read so far
  std::vector<TimerEntry> ticks;
};

// --- shared record codecs (no private state) ------------------------------------

namespace {

template <typename W>
void PutReservation(W& w, const Reservation& r, TimeUs base) {
  w.Int(r.user_id);
  w.Int(r.concert_id);
  w.Int(r.schedule_id);
  w.Int(r.token_id);
  w.U8(static_cast<uint8_t>(r.status));
  w.Count(r.seat_ids.size());
  SeatId prev = 0;
  for (SeatId s : r.seat_ids) {
    w.Int(WrapSub(s, prev));
    prev = s;
  }
  w.Int(r.amount);
  w.Time(r.created_at, base);
  w.Time(r.expires_at, r.created_at);
  w.Time(r.ended_at, r.created_at);
  w.Int(r.payment_id);
}

template <typename R>
Reservation GetReservation(R& r, TimeUs base) {
  Reservation res;
  res.user_id = r.Int();
  res.concert_id = r.Int();
  res.schedule_id = r.Int();
  res.token_id = r.Int();
  res.status = r.template Enum<ReservationStatus>("reservation status", 5);
  const size_t n = r.Count("reservation seats", 1);
  SeatId prev = 0;
  for (size_t i = 0; i < n && r.ok(); ++i) {
    prev = WrapAdd(prev, r.Int());
    res.seat_ids.push_back(prev);
  }
  res.amount = r.Int();
  res.created_at = r.Time("reservation created_at", base);
  res.expires_at = r.Time("reservation expires_at", res.created_at);
  res.ended_at = r.Time("reservation ended_at", res.created_at, /*never_ok=*/true);
  res.payment_id = r.Int();
  return res;
}

template <typename W>
void PutPayment(W& w, const Payment& p, TimeUs base) {
  w.Int(p.reservation_id);
  w.Int(p.user_id);
  w.Int(p.amount);
  w.U8(static_cast<uint8_t>(p.status));
  w.Time(p.paid_at, base);
  w.Int(p.balance_after);
}

template <typename R>
Payment GetPayment(R& r, TimeUs base) {
  Payment p;
  p.reservation_id = r.Int();
  p.user_id = r.Int();
  p.amount = r.Int();
  p.status = r.template Enum<PaymentStatus>("payment status", 2);
  p.paid_at = r.Time("paid_at", base);
  p.balance_after = r.Int();
  return p;
}

template <typename W>
void PutSale(W& w, const SaleSettings& s) {
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
template <typename R>
SaleSettings GetSale(R& r, const Limits& limits) {
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

// --- encoding ----------------------------------------------------------------------

std::string SnapshotCodec::Save(Engine& engine, Seq* journal_seq) {
  Writer w;
  {
    std::lock_guard<std::mutex> lock(engine.mu_);
    EncodeBody(engine, w);
    if (journal_seq != nullptr) *journal_seq = engine.journal_seq_;
  }
  return std::move(w).Finish();
}

void SnapshotCodec::EncodeQueue(const AdmissionQueue& q, Writer& w) {
  // order_, prequeue_, the WAITING bitmap and the engine's live_tokens_ are rebuilt from
  // the tokens; settings_ from the concert's sale settings.
  w.Bool(q.open_);
  w.Int(q.head_);
  w.Int(q.waiting_);
  w.Int(q.active_);
  w.Int(q.prequeue_waiting_);
  w.Time(q.next_admit_at_, 0);
  w.Time(q.tick_at_, 0);
  w.Int(q.admitted_total_);
  w.Int(q.joined_total_);
  w.Int(q.abandoned_total_);
  w.Count(q.recent_admissions_.size());
  TimeUs prev = 0;
  for (TimeUs t : q.recent_admissions_) {
    w.Time(t, prev);
    prev = t;
  }
}

void SnapshotCodec::EncodeBody(const Engine& e, Writer& w) {
  static_assert(std::variant_size_v<decltype(Engine::IdempotencyRecord::result)> == kResultKinds,
                "new idempotency result kind: add it to the snapshot");
#if defined(__GLIBCXX__) && defined(__x86_64__)
  // Tripwires for the classes the snapshot reads member by member (layouts of
  // libstdc++ on x86-64 with Debian's Abseil): a new member must be stored
  // here, or rebuilt, or named in snapshot.h as not part of the state
  // (Engine::sink_); then update the size.
  // (720: includes id_, the engine's process-local identity, which is not state,
  // and live_tokens_, rebuilt from the tokens.)
  static_assert(sizeof(Engine) == 720, "new Engine member: add it to the snapshot");
  static_assert(sizeof(Engine::Concert) == 304, "new Engine::Concert member");
  static_assert(sizeof(Engine::User) == 56, "new Engine::User member");
  static_assert(sizeof(Engine::IdempotencyRecord) == 184, "new IdempotencyRecord member");
  // (408: wait_front_, wait_back_, abandon_at_ are rebuilt by RebuildAbandonLine;
  // sessions_ from the tokens' times; eta_now_, eta_admitted_ are a cache.)
  static_assert(sizeof(AdmissionQueue) == 408, "new AdmissionQueue member");
  static_assert(sizeof(SeatInventory) == 128, "new SeatInventory member");
  static_assert(sizeof(Ledger) == 72, "new Ledger member");
  static_assert(sizeof(EventLog) == 96, "new EventLog member");
#endif
  w.Section(Tag::kConfig);
  const Limits& limits = e.config_.limits;
#define BOXOFFICE_X(field) w.Int(limits.field);
  BOXOFFICE_SNAPSHOT_LIMITS(BOXOFFICE_X)
#undef BOXOFFICE_X
  w.Var(e.config_.seed);

  w.Section(Tag::kClock);
  w.Time(e.clock_, 0);
  w.Int(e.journal_seq_);

  w.Section(Tag::kAccounts);
  const Ledger& ledger = e.ledger_;
  w.Count(ledger.balances_.size());
  for (size_t a = 0; a < ledger.balances_.size(); ++a) {
    w.U8(static_cast<uint8_t>(ledger.kinds_[a]));
    w.Int(ledger.balances_[a]);
  }

  w.Section(Tag::kUsers);
  w.Count(e.users_.size());
  AccountId prev_account = 0;
  for (const Engine::User& u : e.users_) {
    w.Int(WrapSub(u.account, prev_account));
    prev_account = u.account;
  }

  // Schedules are written inside their concert and get their ids (and seat
  // ids) back by position: the engine hands them out concert by concert.
  w.Section(Tag::kConcerts);
  w.Count(e.concerts_.size());
  TimeUs prev_created = 0;
  ScheduleId next_schedule = 1;
  SeatId next_seat = 1;
  for (const auto& c : e.concerts_) {
    w.Str(c->title);
    w.Str(c->artist);
    w.Str(c->venue);
    PutSale(w, c->sale);
    w.Time(c->created_at, prev_created);
    prev_created = c->created_at;
    w.Int(c->revenue_account);
    w.Count(c->schedules.size());
    for (ScheduleId sid : c->schedules) {
      const SeatInventory& s = *e.schedules_[static_cast<size_t>(sid - 1)];
      BOXOFFICE_ASSERT(sid == next_schedule && s.first_seat_id() == next_seat);
      ++next_schedule;
      next_seat += s.seat_count();
      w.Time(s.starts_at(), 0);
      w.Count(s.sections_.size());
      for (const SeatInventory::Section& section : s.sections_) {
        w.Str(section.spec.name);
        w.Int(section.spec.rows);
        w.Int(section.spec.seats_per_row);
        w.Str(section.spec.grade);
        w.Int(section.spec.price);
      }
    }
    EncodeQueue(*c->queue, w);
  }

  // Format version 2: a token's times by its state (version 1 wrote all five
  // for every token, expires_at included, which follows from activated_at).
  w.Section(Tag::kTokens);
  w.Count(e.tokens_.size() - 1);  // index 0 is the "none" token every engine has
  TimeUs prev_joined = 0;
  for (size_t i = 1; i < e.tokens_.size(); ++i) {
    const QueueToken& t = e.tokens_[i];
    const TokenTimes times = e.concerts_[t.concert_id - 1]->queue->Times(t);
    w.Int(t.user_id);
    w.Int(t.concert_id);
    w.U8(static_cast<uint8_t>(t.state));
    w.U8(static_cast<uint8_t>(t.end));
    w.Int(t.JoinSeq());
    w.Time(t.joined_at, prev_joined);
    prev_joined = t.joined_at;
    w.Time(t.last_seen_at, t.joined_at);
    if (t.state != TokenState::kWaiting) w.Time(times.activated_at, t.joined_at);
    if (t.state == TokenState::kExpired) w.Time(times.ended_at, t.joined_at);
  }

  w.Section(Tag::kReservations);
  w.Count(e.reservations_.size());
  prev_created = 0;
  for (size_t i = 0; i < e.reservations_.size(); ++i) {
    const Reservation& r = e.reservations_[i];
    BOXOFFICE_ASSERT(r.id == static_cast<ReservationId>(i + 1));
    PutReservation(w, r, prev_created);
    prev_created = r.created_at;
  }

  w.Section(Tag::kPayments);
  w.Count(e.payments_.size());
  TimeUs prev_paid = 0;
  for (size_t i = 0; i < e.payments_.size(); ++i) {
    const Payment& p = e.payments_[i];
    BOXOFFICE_ASSERT(p.id == static_cast<PaymentId>(i + 1));
    PutPayment(w, p, prev_paid);
    prev_paid = p.paid_at;
  }

  w.Section(Tag::kHistory);
  w.Count(ledger.entries_.size());
  TimeUs prev_at = 0;
  for (const HistoryEntry& h : ledger.entries_) {
    w.Int(h.user_id);
    w.U8(static_cast<uint8_t>(h.kind));
    w.Int(h.amount);
    w.Int(h.balance_after);
    w.Time(h.at, prev_at);
    prev_at = h.at;
    w.Int(h.reservation_id);
  }

  // One varint per seat: 0 AVAILABLE, 2 * holder + (1 if SOLD) otherwise.
  w.Section(Tag::kSeats);
  for (const auto& s : e.schedules_) {
    for (const Seat& seat : s->seats_) {
      if (seat.status == SeatStatus::kAvailable) {
        w.Var(0);
      } else {
        w.Var(static_cast<uint64_t>(seat.reservation_id) * 2 +
              (seat.status == SeatStatus::kSold ? 1 : 0));
      }
    }
  }

  w.Section(Tag::kUserSeats);
  std::vector<std::pair<std::pair<UserId, ConcertId>, int64_t>> user_seats(
      e.user_seats_.begin(), e.user_seats_.end());
  std::sort(user_seats.begin(), user_seats.end());
  w.Count(user_seats.size());
  for (const auto& [key, n] : user_seats) {
    w.Int(key.first);
    w.Int(key.second);
    w.Int(n);
  }

  w.Section(Tag::kIdempotency);
  w.Int(e.next_idempotency_id_);
  std::vector<int64_t> ids;
  ids.reserve(e.idempotency_.size());
  for (const auto& [id, record] : e.idempotency_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  w.Count(ids.size());
  int64_t prev_id = 0;
  for (int64_t id : ids) {
    const Engine::IdempotencyRecord& rec = *e.idempotency_.at(id);
    w.Int(WrapSub(id, prev_id));
    prev_id = id;
    w.Str(rec.index_key);
    w.Fixed64(rec.fingerprint);
    w.Time(rec.expires_at, e.clock_);
    w.U8(static_cast<uint8_t>(rec.result.index()));
    if (const auto* r = std::get_if<Reservation>(&rec.result)) {
      w.Int(r->id);
      PutReservation(w, *r, 0);
    } else if (const auto* c = std::get_if<ChargeResult>(&rec.result)) {
      w.Int(c->entry_id);
      w.Int(c->user_id);
      w.Int(c->amount);
      w.Int(c->balance);
      w.Time(c->at, 0);
    } else {
      const Payment& p = std::get<Payment>(rec.result);
      w.Int(p.id);
      PutPayment(w, p, 0);
    }
  }

  // Admission ticks are the only deadlines that are not a function of the
  // state they time out (a stale one may outlive tick_at), so they are stored.
  w.Section(Tag::kTicks);
  std::vector<TimerEntry> ticks;
  e.timer_.ForEach([&](const TimerEntry& t) {
    if (t.kind == TimerKind::kAdmissionTick) ticks.push_back(t);
  });
  w.Count(ticks.size());
  for (const TimerEntry& t : ticks) {
    w.Time(t.at, e.clock_);
    w.Int(t.id);
  }

  w.Section(Tag::kEvents);
  const EventLog& log = e.events_;
  w.Int(log.last_seq_);
  w.Count(log.events_.size());
  prev_at = 0;
  for (const Event& ev : log.events_) {
    w.Time(ev.at, prev_at);
    prev_at = ev.at;
    w.U8(static_cast<uint8_t>(ev.type));
    w.Int(ev.user_id);
    w.Int(ev.concert_id);
    w.Int(ev.token_id);
    w.Int(ev.reservation_id);
    w.Int(ev.amount);
    w.Int(ev.value);
  }

  w.Section(Tag::kEnd);
}

// --- decoding ------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Engine>> SnapshotCodec::Load(absl::string_view bytes) {
  const absl::string_view magic(kSnapshotMagic, kMagicBytes);
  if (bytes.size() < kMagicBytes && bytes == magic.substr(0, bytes.size())) {
    return absl::DataLossError(
        absl::StrCat("damaged snapshot: truncated to ", bytes.size(), " bytes"));
  }
  if (bytes.substr(0, kMagicBytes) != magic) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "not a boxoffice snapshot: the bytes do not start with \"BXSNAP\"");
  }
  if (bytes.size() < kMagicBytes + 2) {
    return absl::DataLossError(
        absl::StrCat("damaged snapshot: truncated to ", bytes.size(), " bytes (no version)"));
  }
  const auto version = static_cast<uint16_t>(GetFixed(bytes, kMagicBytes, 2));
  if (version < kSnapshotVersionOldest || version > kSnapshotVersion) {
    return MakeError(ErrorCode::kInvalidArgument,
                     absl::StrCat("snapshot format version ", version,
                                  version > kSnapshotVersion ? " is newer than" : " is unknown to",
                                  " this boxoffice, which reads versions ",
                                  kSnapshotVersionOldest, " to ", kSnapshotVersion,
                                  "; upgrade boxoffice to load it"));
  }
  if (bytes.size() < kHeaderBytes + kChecksumBytes) {
    return absl::DataLossError(
        absl::StrCat("damaged snapshot: truncated to ", bytes.size(), " bytes"));
  }
  const uint64_t body_bytes = GetFixed(bytes, kMagicBytes + 2, 8);
  const uint64_t have = bytes.size() - kHeaderBytes - kChecksumBytes;
  if (body_bytes != have) {
    return absl::DataLossError(absl::StrCat(
        "damaged snapshot: ", body_bytes > have ? "truncated: " : "wrong length: ",
        "the header says ", body_bytes, " body bytes, there are ", have));
  }
  const size_t covered = bytes.size() - kChecksumBytes;
  const uint64_t stored = GetFixed(bytes, covered, 8);
  if (Checksum(bytes.substr(0, covered)) != stored) {
    return absl::DataLossError("damaged snapshot: checksum mismatch");
  }

  Reader r(bytes.substr(kHeaderBytes, static_cast<size_t>(body_bytes)));
  Decoded d;
  d.version = version;
  if (absl::Status s = DecodeBody(r, d); !s.ok()) return s;
  if (absl::Status s = d.engine->CheckInvariants(); !s.ok()) {
    return absl::DataLossError(
        absl::StrCat("damaged snapshot: the restored state fails its invariants: ", s.message()));
  }
  return std::move(d.engine);
}

absl::Status SnapshotCodec::DecodeBody(Reader& r, Decoded& d) {
  r.Section(Tag::kConfig, "config");
  EngineConfig config;
#define BOXOFFICE_X(field) config.limits.field = r.Int();
  BOXOFFICE_SNAPSHOT_LIMITS(BOXOFFICE_X)
#undef BOXOFFICE_X
  config.seed = r.Var();
  r.Check(config.limits.idempotency_ttl_us >= 0 && config.limits.idempotency_ttl_us < kTimeLimit,
          "idempotency_ttl_us is out of range");
  // Every engine that saves a snapshot was given limits that pass ValidateLimits
  // (the bindings check them); others are damage, not a config to run with.
  if (absl::Status s = ValidateLimits(config.limits); r.ok() && !s.ok()) {
    r.Check(false, absl::StrCat("the limits are out of range: ", s.message()));
  }
  if (!r.ok()) return r.status();
  d.engine = std::make_unique<Engine>(config);
  Engine& e = *d.engine;
  // Nobody else can see the engine yet; the lock is for form (and annotations).
  std::lock_guard<std::mutex> lock(e.mu_);

  r.Section(Tag::kClock, "clock");
  e.clock_ = r.Time("clock", 0);
  e.journal_seq_ = r.Int("journal seq", 0, kTimeLimit);

  r.Section(Tag::kAccounts, "accounts");
  {
    const size_t n = r.Count("accounts", 2);
    r.Check(n >= 1, "the funding account is missing");
    Ledger& ledger = e.ledger_;
    ledger.balances_.clear();
    ledger.kinds_.clear();
    ledger.balances_.reserve(n);
    ledger.kinds_.reserve(n);
    Won sum = 0;
    for (size_t a = 0; a < n && r.ok(); ++a) {
      const auto kind = r.Enum<AccountKind>("account kind", 3);
      const Won balance = r.Int();
      r.Check((a == 0) == (kind == AccountKind::kFunding),
              absl::StrCat("account ", a, " has the wrong kind"));
      r.Check(!__builtin_add_overflow(sum, balance, &sum), "account balances overflow");
      ledger.kinds_.push_back(kind);
      ledger.balances_.push_back(balance);
    }
    r.Check(sum == 0, "the ledger does not sum to zero");
    d.account_used.assign(n, 0);
  }

  r.Section(Tag::kUsers, "users");
  {
    const size_t n = r.Count("users", 1);
    e.users_.resize(n);
    e.live_tokens_.Reserve(static_cast<UserId>(n));
    AccountId account = 0;
    for (size_t i = 0; i < n && r.ok(); ++i) {
      account = WrapAdd(account, r.Int());
      if (!r.Check(account >= 1 && static_cast<size_t>(account) < d.account_used.size() &&
                       e.ledger_.kinds_[static_cast<size_t>(account)] == AccountKind::kWallet &&
                       !d.account_used[static_cast<size_t>(account)],
                   absl::StrCat("user ", i + 1, " has an invalid wallet account"))) {
        break;
      }
      d.account_used[static_cast<size_t>(account)] = 1;
      e.users_[i].account = account;
    }
  }

  r.Section(Tag::kConcerts, "concerts");
  DecodeConcerts(r, d);
  r.Section(Tag::kTokens, "tokens");
  DecodeTokens(r, d);
  r.Section(Tag::kReservations, "reservations");
  DecodeReservations(r, d);
  DecodeLedger(r, d);  // payments and history
  r.Section(Tag::kSeats, "seats");
  DecodeSeats(r, d);

  r.Section(Tag::kUserSeats, "user seats");
  {
    const size_t n = r.Count("user seat counts", 3);
    std::pair<UserId, ConcertId> prev{0, 0};
    for (size_t i = 0; i < n && r.ok(); ++i) {
      const UserId user = r.Int("user seats: user", 1, static_cast<int64_t>(e.users_.size()));
      const ConcertId concert =
          r.Int("user seats: concert", 1, static_cast<int64_t>(e.concerts_.size()));
      const int64_t count = r.Int("user seats: count", 1, kTimeLimit);
      const std::pair<UserId, ConcertId> key{user, concert};
      if (!r.Check(key > prev, "user seat counts are not in order")) break;
      prev = key;
      e.user_seats_.emplace(key, count);
    }
  }

  r.Section(Tag::kIdempotency, "idempotency");
  DecodeIdempotency(r, d);

  r.Section(Tag::kTicks, "admission ticks");
  {
    const size_t n = r.Count("admission ticks", 2);
    for (size_t i = 0; i < n && r.ok(); ++i) {
      const TimeUs at = r.Time("admission tick", e.clock_);
      const ConcertId concert =
          r.Int("admission tick concert", 1, static_cast<int64_t>(e.concerts_.size()));
      r.Check(at >= e.clock_, "an admission tick lies in the past");
      d.ticks.push_back(TimerEntry{at, TimerKind::kAdmissionTick, concert});
    }
  }

  r.Section(Tag::kEvents, "events");
  DecodeEvents(r, d);

  r.Section(Tag::kEnd, "end");
  r.Check(r.AtEnd(), "bytes after the end of the body");
  if (!r.ok()) return r.status();
  Rebuild(r, d);
  return r.status();
}

void SnapshotCodec::DecodeConcerts(Reader& r, Decoded& d) {
  Engine& e = *d.engine;
  const Limits& limits = e.config_.limits;
  const size_t n = r.Count("concerts", 24);
  e.concerts_.reserve(n);
  TimeUs prev_created = 0;
  for (size_t i = 0; i < n && r.ok(); ++i) {
    auto c = std::make_unique<Engine::Concert>();
    c->id = static_cast<ConcertId>(i + 1);
    c->title = r.Str("title");
    c->artist = r.Str("artist");
    c->venue = r.Str("venue");
    c->sale = GetSale(r, limits);
    c->created_at = r.Past("concert created_at", prev_created, e.clock_);
    prev_created = c->created_at;
    const AccountId revenue = r.Int();
    if (!r.Check(revenue >= 1 && static_cast<size_t>(revenue) < d.account_used.size() &&
                     e.ledger_.kinds_[static_cast<size_t>(revenue)] == AccountKind::kRevenue &&
                     !d.account_used[static_cast<size_t>(revenue)],
                 absl::StrCat("concert ", c->id, " has an invalid revenue account"))) {
      return;
    }
    d.account_used[static_cast<size_t>(revenue)] = 1;
    c->revenue_account = revenue;

    const size_t schedules = r.Count("schedules", 4);
    r.Check(schedules >= 1, "a concert without schedules");
    for (size_t k = 0; k < schedules && r.ok(); ++k) {
      const TimeUs starts_at = r.Time("starts_at", 0);
      const size_t sections_n = r.Count("sections", 7);
      r.Check(sections_n >= 1, "a schedule without sections");
      std::vector<SectionSpec> sections(sections_n);
      int64_t seats = 0;
      for (SectionSpec& s : sections) {
        s.name = r.Str("section name");
        s.rows = r.Int("rows", 1, std::min<int64_t>(65535, limits.rows_per_section_max));
        s.seats_per_row =
            r.Int("seats_per_row", 1, std::min<int64_t>(65535, limits.seats_per_row_max));
        s.grade = r.Str("grade");
        s.price = r.Int("price", 1, std::max<int64_t>(1, limits.price_max));
        r.Check(!s.name.empty() && !s.grade.empty(), "a section without a name or grade");
        if (!r.ok()) return;
        seats += s.rows * s.seats_per_row;  // <= 2^32 each, no overflow
      }
      r.Check(seats <= limits.seats_per_schedule_max, "a schedule has too many seats");
      // Every seat takes at least one byte further on: bounds the allocation.
      d.seats_declared += seats;
      if (!r.Check(d.seats_declared <= static_cast<int64_t>(r.remaining()),
                   "more seats than bytes left")) {
        return;
      }
      const auto sid = static_cast<ScheduleId>(e.schedules_.size() + 1);
      auto inventory =
          std::make_unique<SeatInventory>(sid, c->id, starts_at, e.next_seat_id_, sections);
      e.next_seat_id_ += inventory->seat_count();
      e.schedules_.push_back(std::move(inventory));
      c->schedules.push_back(sid);
      for (const SectionSpec& s : sections) {
        if (std::find(c->grades.begin(), c->grades.end(), s.grade) == c->grades.end()) {
          c->grades.push_back(s.grade);
        }
      }
    }
    if (!r.ok()) return;
    QueueSettings q;
    q.capacity = c->sale.queue_capacity;
    q.admission_per_minute = c->sale.admission_per_minute;
    q.session_ttl_us = c->sale.session_ttl_us;
    q.abandon_timeout_us = c->sale.abandon_timeout_us;
    q.poll_interval_us = c->sale.poll_interval_us;
    q.opens_at = c->sale.opens_at;
    // The constructor may schedule the opening; Rebuild redoes the timer.
    c->queue = std::make_unique<AdmissionQueue>(c->id, q, c->created_at, &e.tokens_, &e.timer_,
                                                &e.events_, &e.live_tokens_);
    DecodeQueue(r, *c->queue, e.clock_);
    e.concerts_.push_back(std::move(c));
  }
}

void SnapshotCodec::DecodeQueue(Reader& r, AdmissionQueue& q, TimeUs clock) {
  q.open_ = r.Bool("queue open");
  q.head_ = r.Int("queue head", 0, kTimeLimit);
  q.waiting_ = r.Int("queue waiting", 0, kTimeLimit);
  q.active_ = r.Int("queue active", 0, q.settings_.capacity);
  q.prequeue_waiting_ = r.Int("pre-queue waiting", 0, kTimeLimit);
  q.next_admit_at_ = r.Time("next_admit_at", 0);
  q.tick_at_ = r.Time("tick_at", 0);
  q.admitted_total_ = r.Int("admitted_total", 0, kTimeLimit);
  q.joined_total_ = r.Int("joined_total", 0, kTimeLimit);
  q.abandoned_total_ = r.Int("abandoned_total", 0, kTimeLimit);
  const size_t n = r.Count("recent admissions", 1);
  r.Check(n <= kRecentAdmissionsMax, "too many recent admissions");
  TimeUs prev = 0;
  for (size_t i = 0; i < n && r.ok(); ++i) {
    const TimeUs t = r.Past("recent admission", prev, clock);
    r.Check(t >= prev, "recent admissions are not in order");
    q.recent_admissions_.push_back(t);
    prev = t;
  }
}

void SnapshotCodec::DecodeTokens(Reader& r, Decoded& d) {
  Engine& e = *d.engine;
  const bool v1 = d.version == 1;  // every token has five times, expires_at included
  const size_t n = r.Count("tokens", v1 ? 9 : 7);
  // Ids and join sequences are stored in 32 bits (QueueToken).
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
    QueueToken t;
    t.user_id = static_cast<uint32_t>(r.Int("token user", 1, users));
    t.concert_id = static_cast<uint32_t>(r.Int("token concert", 1, concerts));
    t.state = r.Enum<TokenState>("token state", 3);
    t.end = r.Enum<TokenEnd>("token end", 5);
    const int64_t join_seq = r.Int("join sequence", -1, static_cast<int64_t>(n) - 1);
    t.joined_at = r.Past("joined_at", prev_joined, e.clock_);
    prev_joined = t.joined_at;
    t.last_seen_at = r.Past("last_seen_at", t.joined_at, e.clock_);
    TokenTimes times;
    if (v1 || t.state != TokenState::kWaiting) {
      times.activated_at = r.Past("activated_at", t.joined_at, e.clock_, true);
    }
    if (v1) times.expires_at = r.Time("token expires_at", t.joined_at, true);
    if (v1 || t.state == TokenState::kExpired) {
      times.ended_at = r.Past("token ended_at", t.joined_at, e.clock_, true);
    }
    if (!r.ok()) return;
    AdmissionQueue& q = *e.concerts_[t.concert_id - 1]->queue;
    bool consistent = false;
    switch (t.state) {
      case TokenState::kWaiting:
        consistent = t.end == TokenEnd::kNone && times.activated_at == kNever &&
                     times.ended_at == kNever;
        break;
      case TokenState::kActive:
        // A session ends session_ttl after it began: version 1's stored end must agree.
        consistent = t.end == TokenEnd::kNone && join_seq >= 0 && times.activated_at != kNever &&
                     times.ended_at == kNever &&
                     (!v1 || times.expires_at == times.activated_at + q.settings_.session_ttl_us);
        break;
      case TokenState::kExpired:
        consistent = t.end != TokenEnd::kNone && times.ended_at != kNever;
        break;
    }
    if (t.state != TokenState::kActive) consistent = consistent && times.expires_at == kNever;
    if (!r.Check(consistent, absl::StrCat("token ", i, " is inconsistent with its state"))) return;
    t.join_seq = join_seq < 0 ? QueueToken::kNoJoinSeq : static_cast<uint32_t>(join_seq);
    if (times.activated_at != kNever) {
      t.admitted = true;
      t.slot.session = static_cast<uint32_t>(q.sessions_.size());
      q.sessions_.push_back({.activated_at = times.activated_at, .ended_at = times.ended_at});
    } else if (t.state == TokenState::kExpired) {
      t.slot.ended_at = times.ended_at;
    }
    e.tokens_.push_back(t);
  }
}

void SnapshotCodec::DecodeReservations(Reader& r, Decoded& d) {
  Engine& e = *d.engine;
  const size_t n = r.Count("reservations", 11);
  e.reservations_.reserve(n);
  TimeUs prev_created = 0;
  for (size_t i = 0; i < n && r.ok(); ++i) {
    Reservation res = GetReservation(r, prev_created);
    res.id = static_cast<ReservationId>(i + 1);
    prev_created = res.created_at;
    r.Check(res.created_at <= e.clock_ && res.ended_at <= e.clock_,
            "a reservation was made or ended after the clock");
    if (!r.ok()) return;
    const bool valid =
        res.user_id >= 1 && res.user_id <= static_cast<int64_t>(e.users_.size()) &&
        res.concert_id >= 1 && res.concert_id <= static_cast<int64_t>(e.concerts_.size()) &&
        res.schedule_id >= 1 && res.schedule_id <= static_cast<int64_t>(e.schedules_.size()) &&
        e.schedules_[static_cast<size_t>(res.schedule_id - 1)]->concert_id() == res.concert_id &&
        res.token_id >= 0 && res.token_id < static_cast<int64_t>(e.tokens_.size()) &&
        res.payment_id >= 0 &&
        (res.status == ReservationStatus::kPending) == (res.ended_at == kNever);
    if (!r.Check(valid, absl::StrCat("reservation ", res.id, " has an invalid reference"))) return;
    e.reservations_.push_back(std::move(res));
  }
}

void SnapshotCodec::DecodeLedger(Reader& r, Decoded& d) {
  Engine& e = *d.engine;
  r.Section(Tag::kPayments, "payments");
  const size_t payments = r.Count("payments", 6);
  e.payments_.reserve(payments);
  TimeUs prev_paid = 0;
  for (size_t i = 0; i < payments && r.ok(); ++i) {
    Payment p = GetPayment(r, prev_paid);
    p.id = static_cast<PaymentId>(i + 1);
    prev_paid = p.paid_at;
    r.Check(p.paid_at <= e.clock_, "a payment was made after the clock");
    r.Check(p.reservation_id >= 1 &&
                p.reservation_id <= static_cast<int64_t>(e.reservations_.size()),
            absl::StrCat("payment ", p.id, " names no reservation"));
    e.payments_.push_back(p);
  }

  r.Section(Tag::kHistory, "history");
  const size_t entries = r.Count("history entries", 6);
  e.ledger_.entries_.reserve(entries);
  TimeUs prev_at = 0;
  for (size_t i = 0; i < entries && r.ok(); ++i) {
    HistoryEntry h;
    h.id = static_cast<EntryId>(i + 1);
    h.user_id = r.Int("history user", 1, static_cast<int64_t>(e.users_.size()));
    h.kind = r.Enum<EntryKind>("history kind", 3);
    h.amount = r.Int();
    h.balance_after = r.Int();
    h.at = r.Past("history at", prev_at, e.clock_);
    prev_at = h.at;
    h.reservation_id =
        r.Int("history reservation", 0, static_cast<int64_t>(e.reservations_.size()));
    e.ledger_.entries_.push_back(h);
  }
}

void SnapshotCodec::DecodeSeats(Reader& r, Decoded& d) {
  Engine& e = *d.engine;
  const auto reservations = static_cast<uint64_t>(e.reservations_.size());
  for (const auto& s : e.schedules_) {
    for (SeatId id = s->first_seat_id(); id < s->first_seat_id() + s->seat_count(); ++id) {
      const uint64_t v = r.Var();
      if (!r.ok()) return;
      if (v == 0) continue;
      if (!r.Check(v >= 2 && (v >> 1) <= reservations,
                   absl::StrCat("seat ", id, " names no reservation"))) {
        return;
      }
      // A fresh seat and a holder >= 1: Hold's and Sell's preconditions hold.
      s->Hold(id, static_cast<ReservationId>(v >> 1));
      if ((v & 1) != 0) s->Sell(id);
    }
  }
}

void SnapshotCodec::DecodeIdempotency(Reader& r, Decoded& d) {
  Engine& e = *d.engine;
  e.next_idempotency_id_ = r.Int("next idempotency id", 1, kTimeLimit);
  const size_t n = r.Count("idempotency records", 13);
  int64_t id = 0;
  for (size_t i = 0; i < n && r.ok(); ++i) {
    // Ids ascend and stay below the next id (no overflow on the way).
    id += r.Int("idempotency record id step", 1, e.next_idempotency_id_ - 1 - id);
    auto rec = std::make_unique<Engine::IdempotencyRecord>();
    rec->index_key = r.Str("idempotency key");
    rec->fingerprint = r.Fixed64();
    rec->expires_at = r.Time("idempotency expires_at", e.clock_);
    const uint8_t kind = r.Enum<uint8_t>("idempotency result kind", kResultKinds);
    if (kind == 0) {
      const ReservationId rid = r.Int();
      Reservation res = GetReservation(r, 0);
      res.id = rid;
      rec->result = std::move(res);
    } else if (kind == 1) {
      ChargeResult c;
      c.entry_id = r.Int();
      c.user_id = r.Int();
      c.amount = r.Int();
      c.balance = r.Int();
      c.at = r.Time("charge at", 0);
      rec->result = c;
    } else {
      const PaymentId pid = r.Int();
      Payment p = GetPayment(r, 0);
      p.id = pid;
      rec->result = p;
    }
    if (!r.ok()) return;
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
        !r.Check(rec->expires_at >= e.clock_, "an idempotency record outlived its expiry") ||
        !r.Check(e.idempotency_index_.emplace(rec->index_key, id).second,
                 "an idempotency key is recorded twice")) {
      return;
    }
    e.idempotency_.emplace(id, std::move(rec));
  }
}

void SnapshotCodec::DecodeEvents(Reader& r, Decoded& d) {
  Engine& e = *d.engine;
  EventLog& log = e.events_;
  log.last_seq_ = r.Int("last event seq", 0, kTimeLimit);
  const size_t n = r.Count("events", 8);
  r.Check(static_cast<int64_t>(n) <= log.last_seq_ &&
              static_cast<int64_t>(n) <= std::max<int64_t>(0, log.retention_max_),
          "more events than were appended or are retained");
  TimeUs prev_at = 0;
  for (size_t i = 0; i < n && r.ok(); ++i) {
    Event ev;
    ev.seq = log.last_seq_ - static_cast<Seq>(n) + 1 + static_cast<Seq>(i);
    ev.at = r.Past("event at", prev_at, e.clock_);
    prev_at = ev.at;
    ev.type = r.Enum<EventType>("event type", static_cast<int>(EventType::kCount));
    ev.user_id = r.Int();
    ev.concert_id = r.Int();
    ev.token_id = r.Int();
    ev.reservation_id = r.Int();
    ev.amount = r.Int();
    ev.value = r.Int();
    log.events_.push_back(ev);
  }
}

void SnapshotCodec::Rebuild(Reader& r, Decoded& d) {
  Engine& e = *d.engine;
  // Payments <-> reservations: Refund indexes payments_ by the reservation's
  // payment_id and asserts the payment matches.
  for (const Payment& p : e.payments_) {
    const Reservation& res = e.reservations_[static_cast<size_t>(p.reservation_id - 1)];
    const bool ok =
        res.payment_id == p.id && res.user_id == p.user_id &&
        (p.status == PaymentStatus::kSucceeded
             ? res.status == ReservationStatus::kConfirmed && res.amount == p.amount
             : res.status == ReservationStatus::kRefunded);
    if (!r.Check(ok, absl::StrCat("payment ", p.id, " does not match its reservation"))) return;
  }
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
    if (res.status == ReservationStatus::kConfirmed &&
        !r.Check(!__builtin_add_overflow(paid[static_cast<size_t>(res.concert_id - 1)], res.amount,
                                         &paid[static_cast<size_t>(res.concert_id - 1)]),
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
    Engine::Concert& c = *e.concerts_[static_cast<size_t>(res.concert_id - 1)];
    ++c.reservations_by_status[static_cast<int>(res.status)];
    e.users_[static_cast<size_t>(res.user_id - 1)].reservations.push_back(res.id);
  }
  for (const Payment& p : e.payments_) {
    const Reservation& res = e.reservations_[static_cast<size_t>(p.reservation_id - 1)];
    ++e.concerts_[static_cast<size_t>(res.concert_id - 1)]->payments;
  }
  for (const HistoryEntry& h : e.ledger_.entries_) {
    e.users_[static_cast<size_t>(h.user_id - 1)].history.push_back(h.id);
  }

  RebuildQueues(r, d);
  if (!r.ok()) return;

  // Every deadline but the admission ticks follows from what it times out.
  HoldTimer& timer = e.timer_;
  timer.entries_.clear();
  auto schedule = [&](TimeUs at, TimerKind kind, int64_t id, absl::string_view what) {
    if (r.Check(at >= e.clock_, absl::StrCat(what, " ", id, " has a deadline in the past"))) {
      timer.Schedule(at, kind, id);
    }
  };
  for (const auto& c : e.concerts_) {
    if (c->queue->open_) continue;
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
    const QueueToken& t = e.tokens_[i];
    if (t.state == TokenState::kActive) {
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
    if (!r.Check(timer.entries_.insert(t).second, "an admission tick is stored twice")) return;
  }
}

void SnapshotCodec::RebuildQueues(Reader& r, Decoded& d) {
  Engine& e = *d.engine;
  const size_t concerts = e.concerts_.size();
  // Join order: each queue's join sequences must be exactly 0..n-1.
  std::vector<size_t> sequenced(concerts, 0);
  for (size_t i = 1; i < e.tokens_.size(); ++i) {
    const QueueToken& t = e.tokens_[i];
    if (t.join_seq != QueueToken::kNoJoinSeq) ++sequenced[t.concert_id - 1];
  }
  for (size_t k = 0; k < concerts; ++k) e.concerts_[k]->queue->order_.assign(sequenced[k], 0);
  std::vector<int64_t> waiting(concerts, 0);
  std::vector<int64_t> active(concerts, 0);
  std::vector<int64_t> prequeue_waiting(concerts, 0);
  for (size_t i = 1; i < e.tokens_.size(); ++i) {
    const QueueToken& t = e.tokens_[i];
    const auto id = static_cast<uint32_t>(i);
    const size_t k = t.concert_id - 1;
    AdmissionQueue& q = *e.concerts_[k]->queue;
    if (t.join_seq != QueueToken::kNoJoinSeq) {
      const size_t seq = t.join_seq;
      if (!r.Check(q.open_ && seq < sequenced[k] && q.order_[seq] == 0,
                   absl::StrCat("token ", id, " has an impossible join sequence"))) {
        return;
      }
      q.order_[seq] = id;
      if (t.state == TokenState::kWaiting) ++waiting[k];
    } else if (q.open_) {
      // Tokens that ended in the pre-queue never got a sequence.
      if (!r.Check(t.state == TokenState::kExpired,
                   absl::StrCat("token ", id, " waits outside the order of an open queue"))) {
        return;
      }
    } else {
      q.prequeue_.push_back(id);  // before opening: every token, in join order
      if (t.state == TokenState::kWaiting) ++prequeue_waiting[k];
    }
    if (t.state == TokenState::kActive) ++active[k];
    if (t.state != TokenState::kExpired) {
      if (!r.Check(q.LiveToken(t.user_id) == 0,
                   absl::StrCat("user ", t.user_id, " has two live tokens for concert ",
                                t.concert_id))) {
        return;
      }
      e.live_tokens_.Add(t.user_id, id);
    }
  }
  for (size_t k = 0; k < concerts; ++k) {
    AdmissionQueue& q = *e.concerts_[k]->queue;
    if (!r.Check(waiting[k] == q.waiting_ && active[k] == q.active_ &&
                     prequeue_waiting[k] == q.prequeue_waiting_ &&
                     q.head_ <= static_cast<int64_t>(sequenced[k]),
                 absl::StrCat("the counters of queue ", k + 1, " do not match its tokens"))) {
      return;
    }
    // The WAITING join sequences, sized as Enqueue would have grown them.
    RankBitmap& f = q.waiting_at_;
    f.Reset();
    if (sequenced[k] == 0) continue;
    f.Reserve(static_cast<int64_t>(sequenced[k]) - 1);
    for (size_t seq = 0; seq < sequenced[k]; ++seq) {
      if (e.tokens_[static_cast<size_t>(q.order_[seq])].state == TokenState::kWaiting) {
        f.Set(static_cast<int64_t>(seq));
      }
    }
  }
}

std::string SaveSnapshot(Engine& engine, Seq* journal_seq) {
  return SnapshotCodec::Save(engine, journal_seq);
}

absl::StatusOr<std::unique_ptr<Engine>> LoadSnapshot(absl::string_view bytes) {
  return SnapshotCodec::Load(bytes);
}

}  // namespace boxoffice
