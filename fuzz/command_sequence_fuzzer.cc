// command_sequence_fuzzer: the fuzzer's bytes as a sequence of engine commands.
//
// A small engine (2..5 users, one or two small concerts with tiny TTLs, settings taken
// from a 16-byte header) receives the steps that follow (8 bytes each, layout in
// fuzz_common.h): join, status, leave, gate, hold (explicit seats and best-available),
// release seat, cancel, charge, pay, refund, advance, queries, new users and concerts,
// and ApplyBatch with up to 8 commands. Before each step time moves forward by a small
// jump, or lands exactly on (or 1 µs either side of) a deadline the engine announced
// (hold expiry, session expiry, abandon timeout, sale opening, idempotency expiry), or
// stays behind the clock like a stale caller. Ids are mostly valid and sometimes
// someone else's or missing, so both the success and the error paths run.
//
// Checked after every step:
//   - CheckInvariants() is OK (seats, money, queues);
//   - each concert's queue digest answers every live token's position and ETA as the
//     engine does (queue_digest.h);
//   - the journal path agrees: engine A reports each command to a CommandSink that
//     encodes it (EncodeCommand), as the store does; each record decodes, re-encodes to
//     the same bytes, and Engine::Apply applies it to engine B, which must return the
//     same error code as the original call and reach the same StateHash() (a batch
//     record refused on its arguments is journaled as the clock move it made);
//   - what the command promised: a failed join, leave, release, cancel, charge or
//     refund changed nothing (same StateHash()); joining again gives the same live
//     token; the gate lets only ACTIVE tokens in; a hold holds the seats asked for until
//     a later expires_at; charges, payments and refunds move exactly their amount and
//     leave the reservation CONFIRMED or REFUNDED; a balance is never negative.
// At the end: a snapshot of A loads (LoadSnapshot) into an engine with the same
// StateHash() that saves to the same bytes, and A, B and the loaded engine still agree
// after an hour passes.
//
// Run: build/fuzz/command_sequence_fuzzer build/fuzz/corpus-work/command_sequence_fuzzer
// Replay one input: build/fuzz/command_sequence_fuzzer <file>
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "boxoffice/batch.h"
#include "boxoffice/command.h"
#include "boxoffice/engine.h"
#include "boxoffice/errors.h"
#include "boxoffice/queue_digest.h"
#include "boxoffice/snapshot.h"
#include "fuzz_common.h"

namespace boxoffice_fuzz {
namespace {

constexpr int64_t kUsersMax = 8;
constexpr int64_t kConcertsMax = 4;
constexpr size_t kDeadlinesMax = 64;
constexpr DurationUs kQuarterUs = kMicrosPerSecond / 4;

// Reads the input front to back; past the end every byte is 0.
class Input {
 public:
  Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint8_t Byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  std::array<uint8_t, kSequenceStepBytes> Step() {
    std::array<uint8_t, kSequenceStepBytes> s{};
    for (uint8_t& b : s) b = Byte();
    return s;
  }
  bool done() const { return pos_ >= size_; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

struct ScheduleInfo {
  ScheduleId id = 0;
  ConcertId concert = 0;
  SeatId first_seat = 0;
  int64_t seats = 0;
};

struct ReservationInfo {
  ReservationId id = 0;
  UserId user = 0;
  std::vector<SeatId> seats;
};

class Sequence {
 public:
  explicit Sequence(Input& in) : in_(in) {}

  void Run() {
    Setup();
    while (!in_.done()) Step(in_.Step());
    Finish();
  }

 private:
  // --- set-up ----------------------------------------------------------------------

  void Setup() {
    for (uint8_t& b : header_) b = in_.Byte();
    const uint8_t flags = header_[0];
    EngineConfig config;
    config.seed = static_cast<uint64_t>(header_[14]) | (static_cast<uint64_t>(header_[15]) << 8);
    if (flags & 0x20) config.limits.idempotency_ttl_us = (1 + header_[12] % 8) * kMicrosPerSecond;
    if (flags & 0x40) config.limits.event_retention_max = header_[13] % 8;
    if (flags & 0x80) {
      config.limits.charge_amount_max = 200'000;
      config.limits.balance_max = 300'000;
    }
    // The high bits of two setting bytes: short queues (QUEUE_FULL) and few users.
    if (header_[11] & 0x80) config.limits.queue_length_max = 1 + (header_[11] >> 4) % 4;
    if (header_[12] & 0x80) config.limits.users_max = 2 + header_[7] % 4 + (header_[12] >> 4) % 3;
    if (absl::Status s = ValidateLimits(config.limits); !s.ok()) Fail(s.ToString());
    limits_ = config.limits;
    a_ = std::make_unique<Engine>(config);
    b_ = std::make_unique<Engine>(config);
    a_->SetCommandSink(&sink_);

    now_ = kT0;
    const int64_t users = 2 + header_[7] % 4;
    for (int64_t u = 0; u < users; ++u) Expect(a_->CreateUser(now_).status(), "create user");
    Sync("create users");
    Expect(AddConcert(FirstConcert()), "create concert 1");
    if (flags & 0x01) Expect(AddConcert(SecondConcert()), "create concert 2");
  }

  static ConcertSpec BaseConcert(absl::string_view title) {
    ConcertSpec spec;
    spec.title = std::string(title);
    spec.artist = "fuzz";
    return spec;
  }

  ConcertSpec FirstConcert() const {
    const uint8_t flags = header_[0];
    ConcertSpec spec = BaseConcert("first");
    ScheduleSpec s;
    s.starts_at = kT0 + 3600 * kMicrosPerSecond;
    s.sections.push_back({"A", 1 + header_[5] % 3, 1 + (header_[5] >> 2) % 6, "VIP", 100'000});
    if (header_[6] % 4 != 0) {
      s.sections.push_back({"B", header_[6] % 4, 1 + (header_[6] >> 2) % 6, "R", 40'000});
    }
    spec.schedules.push_back(std::move(s));
    SaleSettings& sale = spec.sale;
    sale.queue_capacity = 1 + header_[1] % 3;
    sale.hold_ttl_us = (1 + header_[2] % 8) * kQuarterUs;
    sale.session_ttl_us = (1 + header_[3] % 16) * 2 * kQuarterUs;
    sale.abandon_timeout_us = (1 + header_[4] % 8) * 2 * kQuarterUs;
    sale.poll_interval_us = std::min(sale.abandon_timeout_us, (1 + (header_[4] >> 4) % 4) * kQuarterUs);
    if (flags & 0x02) sale.opens_at = kT0 + (1 + header_[8] % 16) * 2 * kQuarterUs;
    if (flags & 0x04) sale.admission_per_minute = 1 + header_[9] % 120;
    sale.release_on_payment_failure = (flags & 0x08) != 0;
    if (flags & 0x10) sale.max_seats_per_user = 1 + header_[11] % 4;
    sale.max_seats_per_reservation = 1 + header_[10] % 4;
    return spec;
  }

  ConcertSpec SecondConcert() const {
    ConcertSpec spec = BaseConcert("second");
    for (int i = 0; i < 2; ++i) {
      ScheduleSpec s;
      s.starts_at = kT0 + (7200 + i * 3600) * kMicrosPerSecond;
      s.sections.push_back({"S", 1, 3 - i, i == 0 ? "S" : "VIP", 70'000});
      spec.schedules.push_back(std::move(s));
    }
    SaleSettings& sale = spec.sale;
    sale.queue_capacity = 1;
    sale.hold_ttl_us = (1 + header_[2] % 8) * 2 * kQuarterUs;
    sale.session_ttl_us = (1 + header_[3] % 8) * kQuarterUs;
    sale.abandon_timeout_us = 2 * kMicrosPerSecond;
    sale.poll_interval_us = kMicrosPerSecond;
    sale.opens_at = kT0 + kMicrosPerSecond;
    sale.admission_per_minute = 30;
    sale.release_on_payment_failure = (header_[0] & 0x08) == 0;
    sale.max_seats_per_reservation = 2;
    return spec;
  }

  // Creates `spec` on A (journaled to B) and learns its schedules and seats.
  absl::Status AddConcert(const ConcertSpec& spec) {
    absl::StatusOr<ConcertView> c = a_->CreateConcert(spec, now_);
    Sync("create concert");
    if (!c.ok()) return c.status();
    ++concerts_;
    grades_.insert(grades_.end(), c->grades.begin(), c->grades.end());
    if (c->sale.opens_at != kNever) AddDeadline(c->sale.opens_at);
    for (const ScheduleView& s : c->schedules) {
      // A read at the engine's own clock neither moves it nor is journaled.
      absl::StatusOr<std::vector<SeatView>> seats = a_->ListSeats(s.id, std::nullopt, a_->clock());
      Expect(seats.status(), "list seats");
      Check(!seats->empty() && static_cast<int64_t>(seats->size()) == s.seats_total,
            "a new schedule lists its seats");
      schedules_.push_back({s.id, c->id, seats->front().id, s.seats_total});
    }
    Sync("list seats");
    return absl::OkStatus();
  }

  // --- selectors ---------------------------------------------------------------------

  UserId User(uint8_t sel) const { return sel % (a_->user_count() + 2); }  // 0 and n+1: none
  ConcertId Concert(uint8_t sel) const {
    return (sel & 0xe0) == 0xe0 ? sel % (concerts_ + 2) : 1 + sel % concerts_;
  }
  const ScheduleInfo* Schedule(uint8_t sel) const {
    if ((sel & 0xf0) == 0xf0) return nullptr;  // a missing schedule
    return &schedules_[sel % schedules_.size()];
  }
  ScheduleId ScheduleIdOf(const ScheduleInfo* s, uint8_t sel) const {
    return s != nullptr ? s->id : (sel & 1 ? 0 : static_cast<ScheduleId>(schedules_.size() + 1));
  }
  // Mostly the user's own latest token (for the concert), sometimes any other one.
  TokenId Token(UserId user, ConcertId concert, uint8_t sel) const {
    if (sel >= 0xc0) {
      if (tokens_.empty()) return sel % 4;
      return tokens_[sel % tokens_.size()];
    }
    for (auto it = tokens_.rbegin(); it != tokens_.rend(); ++it) {
      if (token_user_[static_cast<size_t>(*it)] == user &&
          token_concert_[static_cast<size_t>(*it)] == concert) {
        return *it;
      }
    }
    return sel % 3;
  }
  // Mostly one of the user's own reservations (the latest ones first), sometimes any.
  const ReservationInfo* Reservation(UserId user, uint8_t sel) const {
    if (reservations_.empty()) return nullptr;
    if (sel < 0xc0) {
      int skip = sel % 3;
      for (auto it = reservations_.rbegin(); it != reservations_.rend(); ++it) {
        if (it->user == user && skip-- == 0) return &*it;
      }
    }
    return &reservations_[sel % reservations_.size()];
  }
  ReservationId ReservationIdOf(const ReservationInfo* r, uint8_t sel) const {
    if (r != nullptr) return r->id;
    return sel & 1 ? 0 : static_cast<ReservationId>(reservations_.size() + 1);
  }
  std::string Key(uint8_t sel, char prefix) const {
    if (sel % 4 == 0) return "";
    return std::string(1, prefix) + std::to_string(sel % 3);
  }
  Won Amount(uint8_t sel, UserId user) const {
    switch (sel % 8) {
      case 0: return -1 - (sel >> 3);
      case 1: return 0;
      case 2: return 1;
      case 3: return 40'000;
      case 4: return 100'000 + (sel >> 3) * 10'000;
      case 5: return limits_.charge_amount_max;
      case 6: return limits_.charge_amount_max + 1;
      default: {
        const ReservationInfo* r = Reservation(user, 0);
        return r != nullptr ? static_cast<Won>(r->seats.size()) * 100'000 : 70'000;
      }
    }
  }

  // --- time --------------------------------------------------------------------------

  void AddDeadline(TimeUs at) {
    if (at <= 0 || at == kNever) return;
    if (deadlines_.size() >= kDeadlinesMax) {
      deadlines_.erase(std::remove_if(deadlines_.begin(), deadlines_.end(),
                                      [&](TimeUs t) { return t < a_->clock(); }),
                       deadlines_.end());
      if (deadlines_.size() >= kDeadlinesMax) deadlines_.erase(deadlines_.begin());
    }
    deadlines_.push_back(at);
  }
  void LearnToken(const TokenView& t) {
    if (t.status == TokenStatus::kActive) AddDeadline(t.expires_at);
    if (t.status == TokenStatus::kWaiting) {
      AddDeadline(a_->clock() + ConcertAbandonUs(t.concert_id));
    }
  }
  DurationUs ConcertAbandonUs(ConcertId concert) {
    absl::StatusOr<ConcertView> c = a_->GetConcert(concert, a_->clock());
    return c.ok() ? c->sale.abandon_timeout_us : kMicrosPerSecond;
  }

  // The `now` of the next command after the jump `sel` (byte 1 of a step); moves
  // the caller's time forward unless the caller is stale.
  TimeUs Jump(uint8_t sel) {
    now_ = std::max(now_, a_->clock());
    const int64_t n = 1 + (sel >> 4);
    std::optional<TimeUs> deadline;
    if (!deadlines_.empty()) {
      std::vector<TimeUs> ahead;
      for (TimeUs t : deadlines_) {
        if (t >= now_) ahead.push_back(t);
      }
      std::sort(ahead.begin(), ahead.end());
      if (!ahead.empty()) deadline = ahead[static_cast<size_t>(n - 1) % ahead.size()];
    }
    switch (static_cast<TimeJump>((sel & 0x0f) % kTimeJumpCount)) {
      case kJumpNone: break;
      case kJumpMicro: now_ += 1; break;
      case kJumpMilli: now_ += 1'000; break;
      case kJumpQuarters: now_ += n * kQuarterUs; break;
      case kJumpSeconds: now_ += n * kMicrosPerSecond; break;
      case kJumpToDeadline: if (deadline) now_ = *deadline; break;
      case kJumpBeforeDeadline: if (deadline) now_ = std::max(now_, *deadline - 1); break;
      case kJumpAfterDeadline: if (deadline) now_ = *deadline + 1; break;
      case kJumpBack: return now_ - kMicrosPerSecond;
      case kJumpLong: now_ += n * 60 * kMicrosPerSecond; break;
      case kTimeJumpCount: break;
    }
    return now_;
  }

  // --- checks --------------------------------------------------------------------------

  void Expect(const absl::Status& s, absl::string_view what) {
    if (!s.ok()) Fail(absl::StrCat(what, ": ", s.ToString()));
  }

  // BOXOFFICE_FUZZ_TRACE=1 prints every step (to read a reproducer).
  void Trace(absl::string_view what, const absl::Status& s) const {
    if (!trace_) return;
    std::fprintf(stderr, "t=%+.6fs clock=%+.6fs %.*s -> %s\n",
                 static_cast<double>(last_now_ - kT0) / 1e6,
                 static_cast<double>(a_->clock() - kT0) / 1e6, static_cast<int>(what.size()),
                 what.data(), s.ok() ? "OK" : std::string(s.message()).c_str());
  }

  // A call that made one journal record: its op and the error code it returned.
  struct Call {
    Op op = Op::kAdvance;
    ErrorCode code = ErrorCode::kOk;
  };

  // Applies the records A made since the last call to B. `expected` holds the calls
  // that made them, when known (one per record): a record of the call's op must give
  // the call's code again; a call refused before its op ran (a batch record with
  // arguments no command has) made a clock move instead.
  void Sync(absl::string_view after, const std::vector<Call>* expected = nullptr) {
    const size_t first = replayed_;
    if (expected != nullptr) {
      Check(expected->size() == sink_.records.size() - first,
            absl::StrCat(after, ": one record per call expected"));
    }
    for (; replayed_ < sink_.records.size(); ++replayed_) {
      const std::string& bytes = sink_.records[replayed_];
      absl::StatusOr<Command> c = DecodeCommand(bytes);
      if (!c.ok()) Fail(absl::StrCat(after, ": a recorded command does not decode: ",
                                     c.status().ToString()));
      std::string again;
      EncodeCommand(*c, &again);
      Check(again == bytes, absl::StrCat(after, ": a record does not re-encode to its bytes"));
      Check(!c->legacy_batch.has_value(),
            absl::StrCat(after, ": the engine recorded a type-13 record"));
      const Result r = b_->Apply(*c);
      if (expected == nullptr) continue;
      const Call& want = (*expected)[replayed_ - first];
      if (c->op != want.op) {
        Check(c->op == Op::kAdvance && want.code != ErrorCode::kOk,
              absl::StrCat(after, ": a ", OpName(want.op), " call recorded a ", OpName(c->op)));
      } else if (r.code != want.code) {
        Fail(absl::StrCat(after, ": the recorded command returned ", r.status().ToString(),
                          " from the journal, the original call ", GetErrorInfo(want.code).name));
      }
    }
    CheckInvariants(*a_, after);
    CheckQueueDigests(after);
    last_hash_ = a_->StateHash();
    if (last_hash_ != b_->StateHash()) {
      Fail(absl::StrCat(after, ": the engine replayed from the journal differs (clock ",
                        a_->clock(), " vs ", b_->clock(), ", event seq ", a_->last_event_seq(),
                        " vs ", b_->last_event_seq(), ")"));
    }
  }

  // Each concert's queue digest (queue_digest.h) answers every live token as the engine
  // does: a WAITING token's position and ETA, "not WAITING" for an ACTIVE one. Read at the
  // engine's clock, so nothing is recorded and nothing changes.
  void CheckQueueDigests(absl::string_view after) {
    const TimeUs clock = a_->clock();
    for (ConcertId concert = 1; concert <= a_->concert_count(); ++concert) {
      absl::StatusOr<std::string> bytes = a_->EncodeQueueDigest(concert, clock);
      if (!bytes.ok()) Fail(absl::StrCat(after, ": no queue digest: ", bytes.status().ToString()));
      absl::StatusOr<QueueDigest> digest = QueueDigest::Decode(*bytes);
      if (!digest.ok()) {
        Fail(absl::StrCat(after, ": a queue digest does not decode: ", digest.status().ToString()));
      }
      for (UserId user = 1; user <= a_->user_count(); ++user) {
        absl::StatusOr<std::optional<TokenView>> live = a_->LiveToken(user, concert, clock);
        if (!live.ok() || !live->has_value() || (*live)->join_seq < 0) continue;
        const TokenView& t = **live;
        const int64_t position = digest->Position(t.join_seq);
        Check(position == t.position,
              absl::StrCat(after, ": the digest places token ", t.id, " at ", position,
                           ", the engine at ", t.position));
        if (position >= 0) {
          Check(digest->Eta(position) == t.eta_us,
                absl::StrCat(after, ": the digest's ETA of token ", t.id, " differs"));
        }
      }
    }
  }

  // For a single call of `op`: its record (if it made exactly one) must give the same
  // error code from the journal.
  template <typename T>
  void SyncOne(Op op, absl::string_view what, const absl::StatusOr<T>& result,
               size_t records_before) {
    Trace(what, result.status());
    std::vector<Call> expected;
    const size_t made = sink_.records.size() - records_before;
    if (made == 1) expected.push_back({op, GetErrorCode(result.status())});
    Sync(what, made == 1 ? &expected : nullptr);
  }

  // --- steps -------------------------------------------------------------------------

  void Step(const std::array<uint8_t, kSequenceStepBytes>& s) {
    const auto op = static_cast<SequenceOp>(s[0] % kSequenceOpCount);
    const TimeUs now = Jump(s[1]);
    last_now_ = now;
    const UserId user = User(s[2]);
    const ConcertId concert = Concert(s[3]);
    // All or nothing: these commands change nothing when they fail. (Gate, hold and pay
    // count as a poll even when refused, and a failed payment is an event.) Time moves
    // first, so what the deadlines do is not counted.
    const bool unchanged_on_error = op == kOpJoin || op == kOpLeave || op == kOpReleaseSeat ||
                                    op == kOpCancel || op == kOpCharge || op == kOpRefund;
    if (unchanged_on_error) {
      a_->Advance(now);
      Sync("advance before the command");
    }
    const uint64_t hash_before = last_hash_;
    const Won balance_before = BalanceNow(user);
    const size_t before = sink_.records.size();
    auto check_unchanged = [&](const absl::Status& status, absl::string_view what) {
      if (unchanged_on_error && !status.ok() && last_hash_ != hash_before) {
        Fail(absl::StrCat(what, " failed (", status.ToString(), ") but changed the state"));
      }
    };
    switch (op) {
      case kOpJoin: {
        // Asking again returns the same live token, never a second place.
        absl::StatusOr<std::optional<TokenView>> live = a_->LiveToken(user, concert, now);
        absl::StatusOr<TokenView> t = a_->JoinQueue(user, concert, now);
        if (t.ok()) {
          Check(t->user_id == user && t->concert_id == concert &&
                    t->status != TokenStatus::kExpired,
                "join returned a token that is not the user's live token for the concert");
          if (live.ok() && live->has_value()) {
            Check(t->id == (*live)->id, "a second join gave another place in the queue");
          }
          if (std::find(tokens_.begin(), tokens_.end(), t->id) == tokens_.end()) {
            AddToken(t->id, user, concert);
          }
          LearnToken(*t);
        }
        const std::string what = absl::StrCat("join user ", user, " concert ", concert);
        SyncOne(Op::kJoin, what, t, before);
        check_unchanged(t.status(), what);
        return;
      }
      case kOpStatus:
      case kOpLeave:
      case kOpGate: {
        const TokenId token = Token(user, concert, s[4]);
        absl::StatusOr<TokenView> t =
            op == kOpStatus  ? a_->QueueStatus(user, token, now)
            : op == kOpLeave ? a_->LeaveQueue(user, token, now)
                             : a_->CheckGate(user, token, concert, now);
        if (t.ok()) {
          LearnToken(*t);
          Check(t->id == token && t->user_id == user, "a token view of another token");
          if (op == kOpGate) Check(t->status == TokenStatus::kActive, "the gate let a token in that is not ACTIVE");
          if (op == kOpLeave) Check(t->status == TokenStatus::kExpired, "a token that left is still live");
        }
        const Op command_op =
            op == kOpStatus ? Op::kStatus : op == kOpLeave ? Op::kLeave : Op::kGate;
        const std::string what = absl::StrCat(OpName(command_op), " user ", user, " token ", token,
                                              " concert ", concert);
        SyncOne(command_op, what, t, before);
        check_unchanged(t.status(), what);
        return;
      }
      case kOpHoldSeats:
      case kOpHoldBest: {
        const ScheduleInfo* schedule = Schedule(s[5]);
        HoldRequest r;
        r.user_id = user;
        r.schedule_id = ScheduleIdOf(schedule, s[5]);
        r.token_id = Token(user, schedule != nullptr ? schedule->concert : concert, s[4]);
        if (op == kOpHoldSeats) {
          const int64_t count = 1 + s[6] % 5;
          const int64_t stride = 1 + (s[6] >> 3) % 3;
          const SeatId first = schedule != nullptr ? schedule->first_seat : 1;
          const int64_t span = schedule != nullptr ? schedule->seats + 1 : 30;
          for (int64_t k = 0; k < count; ++k) {
            r.seat_ids.push_back(first + (s[7] + k * stride) % span);
          }
          if (s[6] & 0x80) r.seat_ids.push_back(r.seat_ids.front());  // listed twice
        } else {
          r.quantity = s[6] % 6;  // 0: invalid; 5: more than any concert allows
          const size_t g = (s[6] >> 3) % (grades_.size() + 2);
          r.grade = g == 0 ? "" : g <= grades_.size() ? grades_[g - 1] : "none";
        }
        r.idempotency_key = Key(s[7] >> 4, 'h');
        absl::StatusOr<boxoffice::Reservation> h = a_->Hold(r, now);
        if (h.ok()) {
          LearnReservation(*h);
          const size_t want = op == kOpHoldSeats ? r.seat_ids.size() : static_cast<size_t>(r.quantity);
          Check(h->user_id == user && h->schedule_id == r.schedule_id && h->seat_ids.size() == want,
                "a hold holds other seats than asked for");
          // A retry with the key returns the first result as it was then.
          if (r.idempotency_key.empty()) {
            Check(h->status == ReservationStatus::kPending && h->expires_at > a_->clock(),
                  "a new hold is not PENDING until a later expires_at");
          }
        }
        SyncOne(Op::kHold,
                absl::StrCat("hold user ", user, " token ", r.token_id, " schedule ",
                             r.schedule_id, " seats [", absl::StrJoin(r.seat_ids, ","),
                             "] quantity ", r.quantity, " grade '", r.grade, "' key '",
                             r.idempotency_key, "'"),
                h, before);
        return;
      }
      case kOpReleaseSeat: {
        const ReservationInfo* r = Reservation(user, s[4]);
        SeatId seat = 1 + s[6] % 24;
        if (r != nullptr && !r->seats.empty() && s[6] < 0xc0) {
          seat = r->seats[s[6] % r->seats.size()];
        }
        const ReservationId id = ReservationIdOf(r, s[4]);
        auto result = a_->ReleaseSeat(user, id, seat, now);
        if (result.ok()) {
          Check(std::find(result->seat_ids.begin(), result->seat_ids.end(), seat) ==
                    result->seat_ids.end(),
                "a released seat is still part of its reservation");
          Check(result->status == (result->seat_ids.empty() ? ReservationStatus::kCanceled
                                                            : ReservationStatus::kPending),
                "a reservation is CANCELED exactly when its last seat is released");
        }
        const std::string what =
            absl::StrCat("release user ", user, " reservation ", id, " seat ", seat);
        SyncOne(Op::kReleaseSeat, what, result, before);
        check_unchanged(result.status(), what);
        return;
      }
      case kOpCancel: {
        const ReservationId id = ReservationIdOf(Reservation(user, s[4]), s[4]);
        auto result = a_->Cancel(user, id, now);
        if (result.ok()) {
          Check(result->status == ReservationStatus::kCanceled, "a cancel did not cancel");
        }
        const std::string what = absl::StrCat("cancel user ", user, " reservation ", id);
        SyncOne(Op::kCancel, what, result, before);
        check_unchanged(result.status(), what);
        return;
      }
      case kOpCharge: {
        const std::string key = Key(s[5], 'c');
        const Won amount = Amount(s[4], user);
        auto result = a_->Charge(user, amount, key, now);
        if (result.ok() && !key.empty()) AddDeadline(a_->clock() + limits_.idempotency_ttl_us);
        if (result.ok() && key.empty()) {
          Check(result->balance == balance_before + amount && BalanceNow(user) == result->balance,
                "a charge did not add its amount to the balance");
        }
        const std::string what =
            absl::StrCat("charge user ", user, " amount ", amount, " key '", key, "'");
        SyncOne(Op::kCharge, what, result, before);
        check_unchanged(result.status(), what);
        return;
      }
      case kOpPay: {
        const ReservationInfo* r = Reservation(user, s[4]);
        const ConcertId c = r != nullptr ? ConcertOfReservation(*r) : concert;
        const std::string key = Key(s[5], 'p');
        const TokenId token = Token(user, c, s[6]);
        const ReservationId id = ReservationIdOf(r, s[4]);
        auto result = a_->Pay(user, token, id, key, now);
        if (result.ok() && !key.empty()) AddDeadline(a_->clock() + limits_.idempotency_ttl_us);
        if (result.ok() && key.empty()) {
          absl::StatusOr<boxoffice::Reservation> paid = a_->GetReservation(user, id, a_->clock());
          Check(paid.ok() && paid->status == ReservationStatus::kConfirmed &&
                    paid->amount == result->amount,
                "a paid reservation is not CONFIRMED for the amount paid");
          Check(BalanceNow(user) == balance_before - result->amount &&
                    result->balance_after == BalanceNow(user),
                "a payment did not take its amount from the balance");
        }
        SyncOne(Op::kPay,
                absl::StrCat("pay user ", user, " token ", token, " reservation ", id, " key '",
                             key, "'"),
                result, before);
        return;
      }
      case kOpRefund: {
        const ReservationId id = ReservationIdOf(Reservation(user, s[4]), s[4]);
        auto result = a_->Refund(user, id, now);
        if (result.ok()) {
          Check(result->status == ReservationStatus::kRefunded &&
                    BalanceNow(user) == balance_before + result->amount,
                "a refund did not give the amount back");
        }
        const std::string what = absl::StrCat("refund user ", user, " reservation ", id);
        SyncOne(Op::kRefund, what, result, before);
        check_unchanged(result.status(), what);
        return;
      }
      case kOpAdvance:
        a_->Advance(now);
        Trace("advance", absl::OkStatus());
        Sync("advance");
        return;
      case kOpBatch:
        Batch(now, s);
        return;
      case kOpQuery:
        Query(now, user, concert, s);
        Sync("query");
        return;
      case kOpCreateUser:
        if (a_->user_count() < kUsersMax) {
          auto result = a_->CreateUser(now);
          SyncOne(Op::kCreateUser, "create user", result, before);
        }
        return;
      case kOpCreateConcert:
        if (concerts_ < kConcertsMax) {
          ConcertSpec spec = s[4] % 2 ? FirstConcert() : SecondConcert();
          if (s[4] % 8 == 7) spec.schedules.clear();  // refused: journaled as a clock move
          if (s[4] % 8 == 5) spec.sale.opens_at = now + (s[5] % 8) * kQuarterUs;
          now_ = std::max(now_, now);
          (void)AddConcert(spec);
        }
        return;
      case kSequenceOpCount:
        return;
    }
  }

  // The user's balance at the engine's clock (a read that moves nothing); 0 for no user.
  Won BalanceNow(UserId user) {
    absl::StatusOr<Won> b = a_->Balance(user, a_->clock());
    return b.ok() ? *b : 0;
  }

  ConcertId ConcertOfReservation(const ReservationInfo& r) const {
    absl::StatusOr<boxoffice::Reservation> got = a_->GetReservation(r.user, r.id, a_->clock());
    return got.ok() ? got->concert_id : 1;
  }

  void AddToken(TokenId id, UserId user, ConcertId concert) {
    tokens_.push_back(id);
    if (token_user_.size() <= static_cast<size_t>(id)) {
      token_user_.resize(static_cast<size_t>(id) + 1, 0);
      token_concert_.resize(static_cast<size_t>(id) + 1, 0);
    }
    token_user_[static_cast<size_t>(id)] = user;
    token_concert_[static_cast<size_t>(id)] = concert;
  }

  void LearnReservation(const boxoffice::Reservation& r) {
    for (const ReservationInfo& known : reservations_) {
      if (known.id == r.id) return;  // an idempotent retry
    }
    reservations_.push_back({r.id, r.user_id, std::vector<SeatId>(r.seat_ids.begin(), r.seat_ids.end())});
    AddDeadline(r.expires_at);
  }

  void Query(TimeUs now, UserId user, ConcertId concert, const std::array<uint8_t, 8>& s) {
    switch (s[4] % 9) {
      case 0: {
        absl::StatusOr<Won> b = a_->Balance(user, now);
        Check(!b.ok() || *b >= 0, "a balance is negative");
        return;
      }
      case 1: {
        const ScheduleInfo* sc = Schedule(s[5]);
        std::optional<SeatStatus> status;
        if (s[6] % 4 != 3) status = static_cast<SeatStatus>(s[6] % 4);
        (void)a_->ListSeats(ScheduleIdOf(sc, s[5]), status, now);
        return;
      }
      case 2: (void)a_->Stats(concert, now); return;
      case 3:
        (void)a_->GetReservation(user, ReservationIdOf(Reservation(user, s[5]), s[5]), now);
        return;
      case 4: (void)a_->History(user, now); return;
      case 5: (void)a_->LiveToken(user, concert, now); return;
      case 6: (void)a_->ListReservations(user, now); return;
      case 7: (void)a_->ListSchedules(concert, now); return;
      default:
        (void)a_->EventsAfter(a_->last_event_seq() - s[5] % 16, s[6] % 8);
        (void)a_->ListConcerts(s[6] % 2 ? "FIRST" : "", std::nullopt, std::nullopt, now);
        return;
    }
  }

  // An ApplyBatch of 1..8 commands, each taken from one more step of the input: byte 0
  // is the Op (modulo kOpCount + 1: CREATE_CONCERT and kOpCount have no batch form);
  // a HOLD holds best-available when byte 6 is 0x80 or more, else explicit seats.
  void Batch(TimeUs now, const std::array<uint8_t, 8>& head) {
    const size_t n = 1 + head[2] % 8;
    std::vector<BatchCommand> commands(n);
    std::vector<bool> journaled(n);
    TimeUs t = now;
    for (size_t i = 0; i < n; ++i) {
      const std::array<uint8_t, 8> s = in_.Step();
      BatchCommand& c = commands[i];
      c.op = s[0] % (kOpCount + 1);
      if (c.op == static_cast<uint8_t>(Op::kCreateUser) &&
          a_->user_count() + static_cast<int64_t>(n) > kUsersMax) {
        c.op = static_cast<uint8_t>(Op::kAdvance);
      }
      // Time inside a batch moves by small steps; 0xff is an invalid (negative) time.
      t += (s[1] % 4) * kQuarterUs / 2;
      c.now_us = s[1] == 0xff ? -1 : t;
      c.user = User(s[2]);
      const ConcertId concert = Concert(s[3]);
      const ScheduleInfo* schedule = Schedule(s[5]);
      const ReservationInfo* r = Reservation(c.user, s[4]);
      const auto op = static_cast<Op>(c.op);
      switch (op) {
        case Op::kJoin: c.target = concert; break;
        case Op::kStatus:
        case Op::kLeave: c.token = Token(c.user, concert, s[4]); break;
        case Op::kGate:
          c.token = Token(c.user, concert, s[4]);
          c.target = concert;
          break;
        case Op::kHold:
          c.target = ScheduleIdOf(schedule, s[5]);
          c.token = Token(c.user, schedule != nullptr ? schedule->concert : concert, s[4]);
          c.quantity = s[6] % 6;
          if (s[6] < 0x80) {  // explicit seats from arg (never 0, which means best-available)
            c.arg = (schedule != nullptr ? schedule->first_seat : 1) +
                    s[7] % (schedule != nullptr ? schedule->seats : 20);
          } else {
            c.grade = static_cast<uint8_t>(s[7] % (grades_.size() + 2));
          }
          break;
        case Op::kReleaseSeat:
          c.target = ReservationIdOf(r, s[4]);
          c.arg = r != nullptr && !r->seats.empty() ? r->seats[s[7] % r->seats.size()] : s[7];
          break;
        case Op::kCancel:
        case Op::kRefund: c.target = ReservationIdOf(r, s[4]); break;
        case Op::kCharge: c.arg = Amount(s[7], c.user); break;
        case Op::kPay:
          c.target = ReservationIdOf(r, s[4]);
          c.token = Token(c.user, r != nullptr ? ConcertOfReservation(*r) : concert, s[6]);
          break;
        default: break;
      }
      journaled[i] = c.now_us >= 0 && c.op < kOpCount && op != Op::kCreateConcert;
    }
    now_ = std::max(now_, t);
    std::vector<BatchResult> results(n);
    a_->ApplyBatch(commands, results);
    std::vector<Call> expected;
    for (size_t i = 0; i < n; ++i) {
      const BatchCommand& c = commands[i];
      const BatchResult& r = results[i];
      const auto op = static_cast<Op>(c.op);
      Trace(absl::StrCat("batch ", c.op < kOpCount ? OpName(op) : "op", " ", c.op, " user ",
                         c.user, " token ", c.token, " target ", c.target, " arg ", c.arg,
                         " quantity ", c.quantity, " grade ", c.grade),
            r.code == 0 ? absl::OkStatus()
                        : absl::UnknownError(GetErrorInfo(static_cast<ErrorCode>(r.code)).name));
      if (!journaled[i]) {
        Check(r.code == static_cast<uint16_t>(ErrorCode::kInvalidArgument),
              "a batch record with no batch form or an invalid time is not INVALID_ARGUMENT");
        continue;
      }
      expected.push_back({op, static_cast<ErrorCode>(r.code)});
      if (r.code != 0) continue;
      if (op == Op::kJoin && std::find(tokens_.begin(), tokens_.end(), r.id) == tokens_.end()) {
        AddToken(r.id, c.user, c.target);
      }
      if (op == Op::kGate) {
        Check(r.id == c.token && r.status == static_cast<uint8_t>(TokenStatus::kActive),
              "a batch GATE let a token in that is not ACTIVE");
      }
      if (op == Op::kHold) {
        absl::StatusOr<boxoffice::Reservation> got = a_->GetReservation(c.user, r.id, a_->clock());
        Expect(got.status(), "a reservation a batch made");
        LearnReservation(*got);
      }
    }
    Sync("batch", &expected);
  }

  // --- the end -------------------------------------------------------------------------

  void Finish() {
    CheckInvariants(*b_, "the replayed engine at the end");
    const std::string bytes = SaveSnapshot(*a_);
    absl::StatusOr<std::unique_ptr<Engine>> loaded = LoadSnapshot(bytes);
    if (!loaded.ok()) Fail("a snapshot does not load: " + loaded.status().ToString());
    Engine& c = **loaded;
    Check(c.StateHash() == a_->StateHash(), "the loaded snapshot has another state");
    Check(SaveSnapshot(c) == bytes, "a loaded snapshot saves to other bytes");
    const TimeUs later = std::max(now_, a_->clock()) + 3600 * kMicrosPerSecond;
    a_->Advance(later);
    Sync("an hour later");
    c.Advance(later);
    CheckInvariants(c, "the loaded snapshot an hour later");
    Check(c.StateHash() == a_->StateHash(), "the loaded snapshot diverges an hour later");
  }

  Input& in_;
  const bool trace_ = std::getenv("BOXOFFICE_FUZZ_TRACE") != nullptr;
  TimeUs last_now_ = kT0;
  std::array<uint8_t, kSequenceHeaderBytes> header_{};
  Limits limits_;
  EncodingSink sink_;
  size_t replayed_ = 0;
  uint64_t last_hash_ = 0;  // A's StateHash() after the last Sync
  std::unique_ptr<Engine> a_;  // the engine under test, journaling to sink_
  std::unique_ptr<Engine> b_;  // rebuilt from sink_'s records
  TimeUs now_ = kT0;           // the callers' time (the engine's clock may be ahead)
  int64_t concerts_ = 0;
  std::vector<std::string> grades_;
  std::vector<ScheduleInfo> schedules_;
  std::vector<TokenId> tokens_;
  std::vector<UserId> token_user_;       // index = token id
  std::vector<ConcertId> token_concert_;  // index = token id
  std::vector<ReservationInfo> reservations_;
  std::vector<TimeUs> deadlines_;
};

}  // namespace
}  // namespace boxoffice_fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  boxoffice_fuzz::Input in(data, size);
  boxoffice_fuzz::Sequence(in).Run();
  return 0;
}
