// Engine: see engine.h for what it models and why; docs/engine-rules.md
// states every rule (and the order of its checks) that this file applies.
#include "boxoffice/engine.h"

#include <algorithm>
#include <limits>
#include <atomic>
#include <utility>
#include <variant>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "boxoffice/assert.h"
#include "boxoffice/command.h"
#include "boxoffice/digest.h"
#include "boxoffice/errors.h"
#include "engine_internal.h"

namespace boxoffice {
namespace {

constexpr uint8_t kIdempotentHold = 1;
constexpr uint8_t kIdempotentCharge = 2;
constexpr uint8_t kIdempotentPay = 3;
// Requests with more seats or key bytes than this are refused before they are
// journaled; every real limit is far below it (limits.h).
constexpr int64_t kRecordItemsMax = 65'536;

// A command of the scalar layout (command.h).
Command MakeCommand(Op op, TimeUs now, int64_t user = 0, int64_t token = 0, int64_t target = 0,
                    int64_t arg = 0) {
  Command c;
  c.op = op;
  c.now = now;
  c.user = user;
  c.token = token;
  c.target = target;
  c.arg = arg;
  return c;
}

// Engine ids (for LastRecordedSeq); never reused within a process.
std::atomic<uint64_t> next_engine_id{1};

absl::Status Invalid(absl::string_view message) {
  return MakeError(ErrorCode::kInvalidArgument, message);
}
absl::Status Limit(absl::string_view message) {
  return MakeError(ErrorCode::kLimitExceeded, message);
}

// Below a minimum is a malformed request; above a named maximum is a limit.
absl::Status CheckRange(absl::string_view what, int64_t v, int64_t min, int64_t max) {
  if (v < min) return Invalid(absl::StrCat(what, " must be at least ", min, ", got ", v));
  if (v > max) return Limit(absl::StrCat(what, " must be at most ", max, ", got ", v));
  return absl::OkStatus();
}

absl::Status CheckText(absl::string_view what, absl::string_view s, bool required,
                       int64_t max_bytes) {
  if (required && s.empty()) return Invalid(absl::StrCat(what, " must not be empty"));
  if (static_cast<int64_t>(s.size()) > max_bytes) {
    return Invalid(absl::StrCat(what, " must be at most ", max_bytes, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status ValidateConcert(const ConcertSpec& spec, const Limits& limits,
                             int64_t concert_count) {
  const int64_t text_max = limits.text_length_max;
  if (auto s = CheckText("title", spec.title, true, text_max); !s.ok()) return s;
  if (auto s = CheckText("artist", spec.artist, false, text_max); !s.ok()) return s;
  if (auto s = CheckText("venue", spec.venue, false, text_max); !s.ok()) return s;
  if (concert_count >= limits.concerts_max) {
    return Limit(absl::StrCat("at most ", limits.concerts_max, " concerts"));
  }
  if (concert_count >= kCompactIdMax) {  // TokenRecord stores 32 bits
    return Limit(absl::StrCat("at most ", kCompactIdMax, " concerts in one engine"));
  }
  if (auto s = CheckRange("number of schedules", static_cast<int64_t>(spec.schedules.size()), 1,
                          limits.schedules_per_concert_max);
      !s.ok()) {
    return s;
  }
  for (const ScheduleSpec& schedule : spec.schedules) {
    if (schedule.starts_at < 0 || schedule.starts_at > kTimeMaxUs) {
      return Invalid("starts_at is out of range");
    }
    if (auto s = CheckRange("number of sections", static_cast<int64_t>(schedule.sections.size()),
                            1, limits.sections_per_schedule_max);
        !s.ok()) {
      return s;
    }
    int64_t seats = 0;
    for (const SectionSpec& section : schedule.sections) {
      if (auto s = CheckText("section name", section.name, true, text_max); !s.ok()) return s;
      if (auto s = CheckText("grade", section.grade, true, text_max); !s.ok()) return s;
      if (auto s = CheckRange("rows", section.rows, 1, limits.rows_per_section_max); !s.ok()) {
        return s;
      }
      if (auto s = CheckRange("seats_per_row", section.seats_per_row, 1, limits.seats_per_row_max);
          !s.ok()) {
        return s;
      }
      if (auto s = CheckRange("price", section.price, 1, limits.price_max); !s.ok()) return s;
      seats += section.rows * section.seats_per_row;
    }
    if (seats > limits.seats_per_schedule_max) {
      return Limit(absl::StrCat("a schedule has at most ", limits.seats_per_schedule_max,
                                " seats, got ", seats));
    }
  }
  const SaleSettings& sale = spec.sale;
  if (auto s = CheckRange("queue_capacity", sale.queue_capacity, 1, limits.queue_capacity_max);
      !s.ok()) {
    return s;
  }
  if (sale.admission_per_minute != kNoLimit) {
    if (auto s = CheckRange("admission_per_minute", sale.admission_per_minute, 1,
                            kAdmissionPerMinuteMax);
        !s.ok()) {
      return s;
    }
  }
  if (sale.session_ttl_us <= 0 || sale.hold_ttl_us <= 0 || sale.abandon_timeout_us <= 0 ||
      sale.poll_interval_us <= 0) {
    return Invalid("session_ttl, hold_ttl, abandon_timeout and poll_interval must be positive");
  }
  if (sale.session_ttl_us > kTimeMaxUs || sale.hold_ttl_us > kTimeMaxUs ||
      sale.abandon_timeout_us > kTimeMaxUs) {
    return Invalid("a duration is out of range");
  }
  if (sale.poll_interval_us > sale.abandon_timeout_us) {
    return Invalid("poll_interval must not exceed abandon_timeout");
  }
  if (auto s = CheckRange("max_seats_per_reservation", sale.max_seats_per_reservation, 1,
                          limits.seats_per_reservation_max);
      !s.ok()) {
    return s;
  }
  if (sale.max_seats_per_user != kNoLimit && sale.max_seats_per_user < 1) {
    return Invalid("max_seats_per_user must be at least 1");
  }
  if ((sale.opens_at < 0 && sale.opens_at != kNever) || sale.opens_at > kTimeMaxUs) {
    return Invalid("opens_at is out of range");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateLimits(const Limits& l) {
  const int64_t at_least_one[] = {
      l.users_max, l.concerts_max, l.schedules_per_concert_max, l.sections_per_schedule_max,
      l.seats_per_schedule_max, l.rows_per_section_max, l.seats_per_row_max,
      l.seats_per_reservation_max, l.queue_length_max, l.queue_capacity_max, l.price_max,
      l.charge_amount_max, l.balance_max, l.text_length_max, l.idempotency_key_length_max,
      l.list_limit_max};
  for (int64_t v : at_least_one) {
    if (v < 1) return Invalid("every count and amount limit must be at least 1");
  }
  if (l.event_retention_max < 0 || l.idempotency_ttl_us < 0 || l.idempotency_ttl_us > kTimeMaxUs) {
    return Invalid("event_retention_max and idempotency_ttl must not be negative");
  }
  if (l.text_length_max > kRecordItemsMax || l.idempotency_key_length_max > kRecordItemsMax ||
      l.seats_per_reservation_max > 64 || l.rows_per_section_max > 65'535 ||
      l.seats_per_row_max > 65'535) {
    return Invalid("text and key lengths are at most 65536 bytes, seats per reservation at "
                   "most 64, rows and seats per row at most 65535");
  }
  return absl::OkStatus();
}

namespace {

std::string IdempotencyIndexKey(UserId user, uint8_t op, absl::string_view key) {
  return absl::StrCat(user, ":", op, ":", key);
}

}  // namespace


Engine::Engine(EngineConfig config)
    : config_(std::move(config)),
      id_(next_engine_id.fetch_add(1)),
      events_(config_.limits.event_retention_max) {
  tokens_.emplace_back();  // token id 0 is "none"
}

Engine::~Engine() = default;

namespace {
// Times outside [0, kTimeMaxUs] are refused before anything is recorded or
// moved (deadlines computed from them would overflow). The bindings refuse
// them already; this guards C++ callers and damaged journal records.
bool ValidNow(TimeUs now) { return now >= 0 && now <= kTimeMaxUs; }
absl::Status InvalidNow(TimeUs now) {
  return MakeError(ErrorCode::kInvalidArgument,
                   absl::StrCat("now = ", now, " us is outside [0, ", kTimeMaxUs, "]"));
}
}  // namespace

// --- time ------------------------------------------------------------------

TimeUs Engine::AdvanceLocked(TimeUs now) {
  if (now < clock_) now = clock_;
  while (std::optional<TimerEntry> e = timer_.PopDue(now)) {
    BOXOFFICE_ASSERT(e->at >= clock_);
    clock_ = e->at;
    Fire(*e);
  }
  clock_ = now;
  return now;
}

void Engine::Fire(const TimerEntry& e) {
  switch (e.kind) {
    case TimerKind::kQueueOpen:
      concerts_[static_cast<size_t>(e.id - 1)]->queue->OnOpen(e.at, config_.seed);
      return;
    case TimerKind::kHoldExpiry: {
      Reservation& r = reservations_[static_cast<size_t>(e.id - 1)];
      if (r.status != ReservationStatus::kPending) return;  // paid or cancelled: stale
      BOXOFFICE_ASSERT(r.expires_at == e.at);
      EndPending(r, ReservationStatus::kExpired, EventType::kReservationExpired);
      return;
    }
    case TimerKind::kSessionExpiry: {
      const TokenRecord& t = tokens_[static_cast<size_t>(e.id)];
      concerts_[static_cast<size_t>(t.concert_id - 1)]->queue->OnSessionExpiry(e.id, e.at);
      return;
    }
    case TimerKind::kAbandon:  // id = concert
      concerts_[static_cast<size_t>(e.id - 1)]->queue->OnAbandonDue(e.at);
      return;
    case TimerKind::kAdmissionTick:
      concerts_[static_cast<size_t>(e.id - 1)]->queue->OnAdmissionTick(e.at);
      return;
    case TimerKind::kIdempotencyExpiry: {
      auto it = idempotency_.find(e.id);
      BOXOFFICE_ASSERT(it != idempotency_.end());
      idempotency_index_.erase(it->second->index_key);
      idempotency_.erase(it);
      return;
    }
  }
  BOXOFFICE_ASSERT(false && "unknown timer kind");
}

bool Engine::TimerLive(const TimerEntry& e) const {
  switch (e.kind) {
    case TimerKind::kHoldExpiry: {
      const Reservation& r = reservations_[static_cast<size_t>(e.id - 1)];
      return r.status == ReservationStatus::kPending && r.expires_at == e.at;
    }
    case TimerKind::kSessionExpiry: {
      const TokenRecord& t = tokens_[static_cast<size_t>(e.id)];
      return t.status == TokenStatus::kActive &&
             concerts_[t.concert_id - 1]->queue->Times(t).expires_at == e.at;
    }
    case TimerKind::kAbandon:  // follows from the WAITING tokens' last_seen_at
      return false;
    default:
      return true;
  }
}

TimeUs Engine::clock() {
  std::lock_guard<std::mutex> lock(mu_);
  return clock_;
}

// --- journal seam ------------------------------------------------------------

namespace {

// The last journal sequence this thread got from each engine (LastRecordedSeq),
// keyed by an id never reused, so a new engine at an old address starts at 0.
thread_local absl::flat_hash_map<uint64_t, Seq> tls_seqs;

}  // namespace

void Engine::SetCommandSink(CommandSink* sink, Seq journal_seq) {
  std::lock_guard<std::mutex> lock(mu_);
  sink_ = sink;
  if (sink != nullptr) journal_seq_ = journal_seq;
}

CommandSink* Engine::sink() {
  std::lock_guard<std::mutex> lock(mu_);
  return sink_;
}

Seq Engine::LastRecordedSeq() const {
  auto it = tls_seqs.find(id_);
  return it == tls_seqs.end() ? 0 : it->second;
}

void Engine::RecordCommand(const Command& c) {
  if (sink_ == nullptr) return;
  journal_seq_ = sink_->Record(c);
  tls_seqs[id_] = journal_seq_;
}


void Engine::RecordQuery(TimeUs now) {
  if (sink_ != nullptr && now > clock_) RecordCommand(MakeCommand(Op::kAdvance, now));
}

// --- helpers ---------------------------------------------------------------

void Engine::Emit(EventType type, UserId user, ConcertId concert, TokenId token,
                  ReservationId reservation, Won amount, int64_t value) {
  Event e;
  e.at = clock_;
  e.type = type;
  e.user_id = user;
  e.concert_id = concert;
  e.token_id = token;
  e.reservation_id = reservation;
  e.amount = amount;
  e.value = value;
  events_.Append(e);
}

absl::Status Engine::CheckUser(UserId user) const {
  if (user < 1 || user > static_cast<int64_t>(users_.size())) {
    return MakeError(ErrorCode::kUserNotFound, absl::StrCat("no user ", user));
  }
  return absl::OkStatus();
}

absl::StatusOr<Reservation*> Engine::OwnedReservation(UserId user, ReservationId id) {
  if (id < 1 || id > static_cast<int64_t>(reservations_.size()) ||
      reservations_[static_cast<size_t>(id - 1)].user_id != user) {
    // Someone else's reservation is reported exactly like a missing one.
    return MakeError(ErrorCode::kReservationNotFound,
                     absl::StrCat("no reservation ", id, " of user ", user));
  }
  return &reservations_[static_cast<size_t>(id - 1)];
}

void Engine::AdjustUserSeats(UserId user, ConcertId concert, int64_t delta) {
  int64_t& n = user_seats_[std::make_pair(user, concert)];
  n += delta;
  BOXOFFICE_ASSERT(n >= 0);
  if (n == 0) user_seats_.erase(std::make_pair(user, concert));
}

void Engine::EndPending(Reservation& r, ReservationStatus to, EventType event) {
  BOXOFFICE_ASSERT(r.status == ReservationStatus::kPending);
  BOXOFFICE_ASSERT(to == ReservationStatus::kExpired || to == ReservationStatus::kCanceled);
  SeatInventory& schedule = *schedules_[static_cast<size_t>(r.schedule_id - 1)];
  for (SeatId seat : r.seat_ids) {
    BOXOFFICE_ASSERT(schedule.seat(seat).reservation_id == r.id);
    schedule.Release(seat);
  }
  if (!r.seat_ids.empty()) {
    AdjustUserSeats(r.user_id, r.concert_id, -static_cast<int64_t>(r.seat_ids.size()));
  }
  // The hold's timer entry goes stale (hold_timer.h).
  Concert& c = *concerts_[static_cast<size_t>(r.concert_id - 1)];
  --c.reservations_by_status[static_cast<int>(ReservationStatus::kPending)];
  ++c.reservations_by_status[static_cast<int>(to)];
  r.status = to;
  r.ended_at = clock_;
  Emit(event, r.user_id, r.concert_id, r.token_id, r.id, r.amount,
       static_cast<int64_t>(r.seat_ids.size()));
}

TokenView Engine::ViewToken(TokenId id) const {
  const TokenRecord& t = tokens_[static_cast<size_t>(id)];
  const Concert& c = *concerts_[t.concert_id - 1];
  TokenView v;
  v.id = id;
  v.user_id = t.user_id;
  v.concert_id = t.concert_id;
  v.status = t.status;
  v.end = t.end;
  v.position = c.queue->Position(id);
  v.join_seq = t.JoinSeq();
  v.eta_us = t.status == TokenStatus::kWaiting ? c.queue->Eta(id, clock_) : 0;
  v.poll_after_us = c.sale.poll_interval_us;
  v.joined_at = t.joined_at;
  const TokenTimes times = c.queue->Times(t);
  v.activated_at = times.activated_at;
  v.expires_at = times.expires_at;
  v.ended_at = times.ended_at;
  return v;
}

ScheduleView Engine::ViewSchedule(const SeatInventory& s) const {
  ScheduleView v;
  v.id = s.id();
  v.concert_id = s.concert_id();
  v.starts_at = s.starts_at();
  v.seats_total = s.seat_count();
  v.seats_available = s.count(SeatStatus::kAvailable);
  v.seats_held = s.count(SeatStatus::kHeld);
  v.seats_sold = s.count(SeatStatus::kSold);
  return v;
}

ConcertView Engine::ViewConcert(const Concert& c) const {
  ConcertView v;
  v.id = c.id;
  v.title = c.title;
  v.artist = c.artist;
  v.venue = c.venue;
  v.sale = c.sale;
  v.grades = c.grades;
  v.created_at = c.created_at;
  for (ScheduleId s : c.schedules) {
    v.schedules.push_back(ViewSchedule(*schedules_[static_cast<size_t>(s - 1)]));
  }
  return v;
}

const Engine::IdempotencyRecord* Engine::FindIdempotent(UserId user, uint8_t op,
                                                        absl::string_view key) const {
  if (key.empty()) return nullptr;
  auto it = idempotency_index_.find(IdempotencyIndexKey(user, op, key));
  if (it == idempotency_index_.end()) return nullptr;
  return idempotency_.at(it->second).get();
}

template <typename T>
void Engine::RememberIdempotent(UserId user, uint8_t op, absl::string_view key,
                                uint64_t fingerprint, const T& result) {
  if (key.empty()) return;
  auto record = std::make_unique<IdempotencyRecord>();
  record->index_key = IdempotencyIndexKey(user, op, key);
  record->fingerprint = fingerprint;
  record->expires_at = clock_ + config_.limits.idempotency_ttl_us;
  record->result = result;
  const int64_t id = next_idempotency_id_++;
  timer_.Schedule(record->expires_at, TimerKind::kIdempotencyExpiry, id);
  idempotency_index_.emplace(record->index_key, id);
  idempotency_.emplace(id, std::move(record));
}

namespace {

absl::Status CheckKey(absl::string_view key, const Limits& limits) {
  if (static_cast<int64_t>(key.size()) > limits.idempotency_key_length_max) {
    return Invalid(absl::StrCat("an idempotency key has at most ",
                                limits.idempotency_key_length_max, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status KeyReused(absl::string_view key) {
  return MakeError(ErrorCode::kIdempotencyKeyReused,
                   absl::StrCat("idempotency key '", key, "' was used with another request"));
}

}  // namespace

// --- catalog -----------------------------------------------------------------

absl::StatusOr<UserId> Engine::CreateUserLocked() {
  if (static_cast<int64_t>(users_.size()) >= config_.limits.users_max) {
    return Limit(absl::StrCat("at most ", config_.limits.users_max, " users"));
  }
  if (static_cast<int64_t>(users_.size()) >= kCompactIdMax) {  // TokenRecord stores 32 bits
    return Limit(absl::StrCat("at most ", kCompactIdMax, " users in one engine"));
  }
  User u;
  u.account = ledger_.OpenAccount(AccountKind::kWallet);
  users_.push_back(std::move(u));
  const auto id = static_cast<UserId>(users_.size());
  live_tokens_.Reserve(id);
  Emit(EventType::kUserCreated, id, 0, 0, 0, 0, 0);
  return id;
}

ConcertView Engine::CreateConcertLocked(const ConcertSpec& spec) {
  auto c = std::make_unique<Concert>();
  c->id = static_cast<ConcertId>(concerts_.size() + 1);
  c->title = spec.title;
  c->artist = spec.artist;
  c->venue = spec.venue;
  c->sale = spec.sale;
  c->created_at = clock_;
  c->revenue_account = ledger_.OpenAccount(AccountKind::kRevenue);
  for (const ScheduleSpec& schedule : spec.schedules) {
    const auto sid = static_cast<ScheduleId>(schedules_.size() + 1);
    auto inventory = std::make_unique<SeatInventory>(sid, c->id, schedule.starts_at,
                                                     next_seat_id_, schedule.sections);
    next_seat_id_ += inventory->seat_count();
    schedules_.push_back(std::move(inventory));
    c->schedules.push_back(sid);
    for (const SectionSpec& section : schedule.sections) {
      if (std::find(c->grades.begin(), c->grades.end(), section.grade) == c->grades.end()) {
        c->grades.push_back(section.grade);
      }
    }
  }
  QueueSettings q;
  q.queue_capacity = spec.sale.queue_capacity;
  q.admission_per_minute = spec.sale.admission_per_minute;
  q.session_ttl_us = spec.sale.session_ttl_us;
  q.abandon_timeout_us = spec.sale.abandon_timeout_us;
  q.poll_interval_us = spec.sale.poll_interval_us;
  q.opens_at = spec.sale.opens_at;
  c->queue = std::make_unique<AdmissionQueue>(c->id, q, clock_, &tokens_, &timer_, &events_,
                                              &live_tokens_);
  Concert& ref = *c;
  concerts_.push_back(std::move(c));
  Emit(EventType::kConcertCreated, 0, ref.id, 0, 0, 0, 0);
  return ViewConcert(ref);
}

// --- queue -------------------------------------------------------------------

absl::StatusOr<TokenView> Engine::JoinLocked(UserId user, ConcertId concert) {
  if (absl::Status s = CheckUser(user); !s.ok()) return s;
  if (concert < 1 || concert > static_cast<int64_t>(concerts_.size())) {
    return MakeError(ErrorCode::kConcertNotFound, absl::StrCat("no concert ", concert));
  }
  AdmissionQueue& q = *concerts_[static_cast<size_t>(concert - 1)]->queue;
  const TokenId live = q.LiveToken(user);
  absl::StatusOr<TokenId> id = q.Join(user, clock_, config_.limits.queue_length_max);
  if (!id.ok()) return id.status();
  TokenView view = ViewToken(*id);
  view.created = *id != live;
  return view;
}

absl::StatusOr<TokenRecord*> Engine::UserToken(UserId user, TokenId token) {
  if (absl::Status s = CheckUser(user); !s.ok()) return s;
  if (token < 1 || token >= static_cast<int64_t>(tokens_.size()) ||
      static_cast<UserId>(tokens_[static_cast<size_t>(token)].user_id) != user) {
    return MakeError(ErrorCode::kQueueTokenInvalid,
                     absl::StrCat("queue token ", token, " is not a token of user ", user));
  }
  return &tokens_[static_cast<size_t>(token)];
}

absl::StatusOr<TokenView> Engine::StatusLocked(UserId user, TokenId token) {
  absl::StatusOr<TokenRecord*> t = UserToken(user, token);
  if (!t.ok()) return t.status();
  concerts_[static_cast<size_t>((*t)->concert_id - 1)]->queue->Touch(token, clock_);
  return ViewToken(token);
}

absl::StatusOr<TokenView> Engine::LeaveLocked(UserId user, TokenId token) {
  absl::StatusOr<TokenRecord*> t = UserToken(user, token);
  if (!t.ok()) return t.status();
  concerts_[static_cast<size_t>((*t)->concert_id - 1)]->queue->Leave(token, clock_);
  return ViewToken(token);
}

const TokenRecord* Engine::GateLocked(UserId user, TokenId token, ConcertId concert,
                                     Refusal* refused) {
  absl::StatusOr<TokenRecord*> found = UserToken(user, token);
  if (!found.ok()) {
    *refused = Refusal::FromStatus(found.status());
    return nullptr;
  }
  TokenRecord& t = **found;
  if (static_cast<ConcertId>(t.concert_id) != concert) {
    *refused = Refusal(ErrorCode::kQueueTokenInvalid,
                       absl::StrCat("queue token ", token, " is for concert ", t.concert_id,
                                    ", not ", concert));
    return nullptr;
  }
  AdmissionQueue& q = *concerts_[static_cast<size_t>(concert - 1)]->queue;
  q.Touch(token, clock_);
  if (t.status == TokenStatus::kExpired) {
    *refused = Refusal(ErrorCode::kQueueTokenExpired,
                       absl::StrCat("queue token ", token, " expired (", ToString(t.end), ")"));
    return nullptr;
  }
  if (t.status == TokenStatus::kWaiting) {
    ErrorDetails d;
    const int64_t position = q.Position(token);
    if (position >= 0) d.position = position;
    d.eta_us = q.Eta(token, clock_);
    d.retry_after_us = q.settings().poll_interval_us;
    *refused = Refusal(ErrorCode::kQueueNotActive,
                       position >= 0
                           ? absl::StrCat("queue token ", token, " is WAITING; ", position,
                                          " ahead")
                           : absl::StrCat("queue token ", token,
                                          " is WAITING in the pre-queue until the sale opens"),
                       d);
    return nullptr;
  }
  return &t;
}

// --- reservations --------------------------------------------------------------

namespace {

uint64_t HoldFingerprint(ScheduleId schedule, std::span<const SeatId> seats, int64_t quantity,
                         absl::string_view grade) {
  Digest d;
  d.Mix(schedule);
  d.Mix(static_cast<int64_t>(seats.size()));
  for (SeatId s : seats) d.Mix(s);
  d.Mix(quantity);
  d.Mix(grade);
  return d.value();
}

}  // namespace

absl::StatusOr<Reservation> Engine::HoldLocked(const HoldArgs& a) {
  if (absl::Status s = CheckUser(a.user_id); !s.ok()) return s;
  if (absl::Status s = CheckKey(a.idempotency_key, config_.limits); !s.ok()) return s;
  const uint64_t fingerprint =
      a.idempotency_key.empty() ? 0 : HoldFingerprint(a.schedule_id, a.seat_ids, a.quantity, a.grade);
  if (const IdempotencyRecord* r = FindIdempotent(a.user_id, kIdempotentHold, a.idempotency_key)) {
    if (r->fingerprint != fingerprint) return KeyReused(a.idempotency_key);
    return std::get<Reservation>(r->result);
  }
  if (a.schedule_id < 1 || a.schedule_id > static_cast<int64_t>(schedules_.size())) {
    return MakeError(ErrorCode::kScheduleNotFound, absl::StrCat("no schedule ", a.schedule_id));
  }
  SeatInventory& schedule = *schedules_[static_cast<size_t>(a.schedule_id - 1)];
  Concert& concert = *concerts_[static_cast<size_t>(schedule.concert_id() - 1)];
  if (Refusal refused; GateLocked(a.user_id, a.token_id, concert.id, &refused) == nullptr) {
    return refused.ToStatus();
  }

  const bool explicit_seats = !a.seat_ids.empty();
  if (explicit_seats == (a.quantity > 0) || a.quantity < 0) {
    return Invalid("give either seat_ids or a positive quantity");
  }
  if (explicit_seats && !a.grade.empty()) return Invalid("grade goes with quantity only");
  const int64_t count = explicit_seats ? static_cast<int64_t>(a.seat_ids.size()) : a.quantity;
  if (count > concert.sale.max_seats_per_reservation) {
    return MakeError(ErrorCode::kTooManySeats,
                     absl::StrCat("at most ", concert.sale.max_seats_per_reservation,
                                  " seats per reservation, asked for ", count));
  }
  if (explicit_seats) {
    for (size_t i = 0; i < a.seat_ids.size(); ++i) {
      for (size_t j = 0; j < i; ++j) {
        if (a.seat_ids[i] == a.seat_ids[j]) {
          return Invalid(absl::StrCat("seat ", a.seat_ids[i], " is listed twice"));
        }
      }
    }
  } else if (!a.grade.empty() && std::find(concert.grades.begin(), concert.grades.end(),
                                           a.grade) == concert.grades.end()) {
    return Invalid(absl::StrCat("concert ", concert.id, " has no grade '", a.grade, "'"));
  }
  if (concert.sale.max_seats_per_user != kNoLimit) {
    auto it = user_seats_.find(std::make_pair(a.user_id, concert.id));
    const int64_t owned = it == user_seats_.end() ? 0 : it->second;
    if (owned + count > concert.sale.max_seats_per_user) {
      return MakeError(ErrorCode::kSeatLimitPerUser,
                       absl::StrCat("at most ", concert.sale.max_seats_per_user,
                                    " seats per user for this concert; already ", owned));
    }
  }
  SeatList seats;
  if (explicit_seats) {
    if (absl::Status s = schedule.CheckAvailable(a.seat_ids); !s.ok()) return s;
    seats.assign(a.seat_ids.begin(), a.seat_ids.end());
  } else {
    std::optional<std::vector<SeatId>> found = schedule.FindBestAvailable(a.quantity, a.grade);
    if (!found.has_value()) {
      return MakeError(ErrorCode::kSeatUnavailable,
                       absl::StrCat("no ", a.quantity, " adjacent available seats",
                                    a.grade.empty() ? "" : absl::StrCat(" of grade ", a.grade)));
    }
    seats.assign(found->begin(), found->end());
  }

  Reservation r;
  r.id = static_cast<ReservationId>(reservations_.size() + 1);
  r.user_id = a.user_id;
  r.concert_id = concert.id;
  r.schedule_id = schedule.id();
  r.token_id = a.token_id;
  r.status = ReservationStatus::kPending;
  r.seat_ids = seats;
  for (SeatId seat : seats) {
    r.amount += schedule.price(seat);
    schedule.Hold(seat, r.id);
  }
  r.created_at = clock_;
  r.expires_at = clock_ + concert.sale.hold_ttl_us;
  reservations_.push_back(r);
  users_[static_cast<size_t>(a.user_id - 1)].reservations.push_back(r.id);
  AdjustUserSeats(a.user_id, concert.id, count);
  timer_.Schedule(r.expires_at, TimerKind::kHoldExpiry, r.id);
  ++concert.reservations_by_status[static_cast<int>(ReservationStatus::kPending)];
  Emit(EventType::kReservationHeld, r.user_id, r.concert_id, r.token_id, r.id, r.amount, count);
  RememberIdempotent(a.user_id, kIdempotentHold, a.idempotency_key, fingerprint, r);
  return r;
}

namespace {

absl::Status NotPending(const Reservation& r) {
  if (r.status == ReservationStatus::kExpired) {
    return MakeError(ErrorCode::kHoldExpired,
                     absl::StrCat("reservation ", r.id, " expired; its seats were released"));
  }
  return MakeError(ErrorCode::kReservationNotPending,
                   absl::StrCat("reservation ", r.id, " is ", ToString(r.status)));
}

}  // namespace

absl::StatusOr<Reservation> Engine::ReleaseSeatLocked(UserId user, ReservationId id,
                                                      SeatId seat) {
  if (absl::Status s = CheckUser(user); !s.ok()) return s;
  absl::StatusOr<Reservation*> found = OwnedReservation(user, id);
  if (!found.ok()) return found.status();
  Reservation& r = **found;
  if (r.status != ReservationStatus::kPending) return NotPending(r);
  auto it = std::find(r.seat_ids.begin(), r.seat_ids.end(), seat);
  if (it == r.seat_ids.end()) {
    return MakeError(ErrorCode::kSeatNotInReservation,
                     absl::StrCat("seat ", seat, " is not part of reservation ", id),
                     {.seat_id = seat});
  }
  SeatInventory& schedule = *schedules_[static_cast<size_t>(r.schedule_id - 1)];
  r.amount -= schedule.price(seat);
  schedule.Release(seat);
  r.seat_ids.erase(it);
  AdjustUserSeats(user, r.concert_id, -1);
  Emit(EventType::kSeatReleased, user, r.concert_id, r.token_id, r.id, schedule.price(seat), seat);
  if (r.seat_ids.empty()) {
    EndPending(r, ReservationStatus::kCanceled, EventType::kReservationCanceled);
  }
  return r;
}

absl::StatusOr<Reservation> Engine::CancelLocked(UserId user, ReservationId id) {
  if (absl::Status s = CheckUser(user); !s.ok()) return s;
  absl::StatusOr<Reservation*> found = OwnedReservation(user, id);
  if (!found.ok()) return found.status();
  Reservation& r = **found;
  if (r.status != ReservationStatus::kPending) return NotPending(r);
  EndPending(r, ReservationStatus::kCanceled, EventType::kReservationCanceled);
  return r;
}

// --- money -------------------------------------------------------------------

absl::StatusOr<ChargeResult> Engine::ChargeLocked(UserId user, Won amount,
                                                  absl::string_view key) {
  if (absl::Status s = CheckUser(user); !s.ok()) return s;
  if (absl::Status s = CheckKey(key, config_.limits); !s.ok()) return s;
  Digest fp;
  fp.Mix(amount);
  if (const IdempotencyRecord* r = FindIdempotent(user, kIdempotentCharge, key)) {
    if (r->fingerprint != fp.value()) return KeyReused(key);
    return std::get<ChargeResult>(r->result);
  }
  if (amount < 1 || amount > config_.limits.charge_amount_max) {
    return MakeError(ErrorCode::kInvalidAmount,
                     absl::StrCat("a charge must be between 1 and ",
                                  config_.limits.charge_amount_max, " won, got ", amount));
  }
  User& u = users_[static_cast<size_t>(user - 1)];
  const Won balance = ledger_.balance(u.account);
  if (balance + amount > config_.limits.balance_max) {
    return MakeError(ErrorCode::kBalanceLimitExceeded,
                     absl::StrCat("a balance is at most ", config_.limits.balance_max,
                                  " won; it is ", balance));
  }
  ledger_.Transfer(Ledger::kFundingAccount, u.account, amount);
  ChargeResult result;
  result.user_id = user;
  result.amount = amount;
  result.balance = ledger_.balance(u.account);
  result.at = clock_;
  result.entry_id = ledger_.Record(user, EntryKind::kCharge, amount, result.balance, clock_, 0);
  u.history.push_back(result.entry_id);
  Emit(EventType::kBalanceCharged, user, 0, 0, 0, amount, result.balance);
  RememberIdempotent(user, kIdempotentCharge, key, fp.value(), result);
  return result;
}

absl::StatusOr<Payment> Engine::PayLocked(UserId user, TokenId token, ReservationId id,
                                          absl::string_view key) {
  if (absl::Status s = CheckUser(user); !s.ok()) return s;
  if (absl::Status s = CheckKey(key, config_.limits); !s.ok()) return s;
  Digest fp;
  fp.Mix(id);
  if (const IdempotencyRecord* rec = FindIdempotent(user, kIdempotentPay, key)) {
    if (rec->fingerprint != fp.value()) return KeyReused(key);
    return std::get<Payment>(rec->result);
  }
  absl::StatusOr<Reservation*> found = OwnedReservation(user, id);
  if (!found.ok()) return found.status();
  Reservation& r = **found;
  if (Refusal refused; GateLocked(user, token, r.concert_id, &refused) == nullptr) {
    return refused.ToStatus();
  }
  if (r.status != ReservationStatus::kPending) return NotPending(r);

  User& u = users_[static_cast<size_t>(user - 1)];
  Concert& concert = *concerts_[static_cast<size_t>(r.concert_id - 1)];
  const Won balance = ledger_.balance(u.account);
  if (balance < r.amount) {
    Emit(EventType::kPaymentFailed, user, r.concert_id, token, r.id, r.amount, balance);
    if (concert.sale.release_on_payment_failure) {
      // The concert's compensation for a failed payment: give the seats back at once.
      EndPending(r, ReservationStatus::kCanceled, EventType::kReservationCanceled);
    }
    return MakeError(ErrorCode::kInsufficientBalance,
                     absl::StrCat("balance ", balance, " won is less than the amount ", r.amount,
                                  " won"));
  }
  ledger_.Transfer(u.account, concert.revenue_account, r.amount);
  Payment p;
  p.id = static_cast<PaymentId>(payments_.size() + 1);
  p.reservation_id = r.id;
  p.user_id = user;
  p.amount = r.amount;
  p.status = PaymentStatus::kSucceeded;
  p.paid_at = clock_;
  p.balance_after = ledger_.balance(u.account);
  payments_.push_back(p);
  u.history.push_back(
      ledger_.Record(user, EntryKind::kPayment, p.amount, p.balance_after, clock_, r.id));
  SeatInventory& schedule = *schedules_[static_cast<size_t>(r.schedule_id - 1)];
  for (SeatId seat : r.seat_ids) schedule.Sell(seat);
  r.status = ReservationStatus::kConfirmed;
  r.ended_at = clock_;
  r.payment_id = p.id;
  --concert.reservations_by_status[static_cast<int>(ReservationStatus::kPending)];
  ++concert.reservations_by_status[static_cast<int>(ReservationStatus::kConfirmed)];
  ++concert.payments;
  Emit(EventType::kPaymentSucceeded, user, r.concert_id, token, r.id, r.amount, p.id);
  concert.queue->Complete(token, clock_);
  RememberIdempotent(user, kIdempotentPay, key, fp.value(), p);
  return p;
}

absl::StatusOr<Reservation> Engine::RefundLocked(UserId user, ReservationId id) {
  if (absl::Status s = CheckUser(user); !s.ok()) return s;
  absl::StatusOr<Reservation*> found = OwnedReservation(user, id);
  if (!found.ok()) return found.status();
  Reservation& r = **found;
  if (r.status != ReservationStatus::kConfirmed) {
    return MakeError(ErrorCode::kReservationNotConfirmed,
                     absl::StrCat("reservation ", id, " is ", ToString(r.status),
                                  "; only a CONFIRMED one can be refunded"));
  }
  User& u = users_[static_cast<size_t>(user - 1)];
  Concert& concert = *concerts_[static_cast<size_t>(r.concert_id - 1)];
  Payment& p = payments_[static_cast<size_t>(r.payment_id - 1)];
  BOXOFFICE_ASSERT(p.status == PaymentStatus::kSucceeded && p.amount == r.amount);
  ledger_.Transfer(concert.revenue_account, u.account, r.amount);
  p.status = PaymentStatus::kRefunded;
  SeatInventory& schedule = *schedules_[static_cast<size_t>(r.schedule_id - 1)];
  for (SeatId seat : r.seat_ids) schedule.Release(seat);
  AdjustUserSeats(user, r.concert_id, -static_cast<int64_t>(r.seat_ids.size()));
  r.status = ReservationStatus::kRefunded;
  --concert.reservations_by_status[static_cast<int>(ReservationStatus::kConfirmed)];
  ++concert.reservations_by_status[static_cast<int>(ReservationStatus::kRefunded)];
  u.history.push_back(ledger_.Record(user, EntryKind::kRefund, r.amount,
                                     ledger_.balance(u.account), clock_, r.id));
  Emit(EventType::kReservationRefunded, user, r.concert_id, r.token_id, r.id, r.amount,
       static_cast<int64_t>(r.seat_ids.size()));
  return r;
}

// --- the one command path ---------------------------------------------------------

namespace {

// A request larger than any limit is refused before it is journaled (a journal
// record is bounded); every real limit is far below kRecordItemsMax.
bool Oversized(const Command& c) {
  return static_cast<int64_t>(c.seats.size()) > kRecordItemsMax ||
         static_cast<int64_t>(c.key.size()) > kRecordItemsMax ||
         static_cast<int64_t>(c.grade.size()) > kRecordItemsMax;
}

template <typename T>
Result Answer(T&& value) {
  Result r;  // the only return: built in place (NRVO), never moved
  r.value.template emplace<std::decay_t<T>>(std::forward<T>(value));
  return r;
}

template <typename T>
Result Wrap(absl::StatusOr<T>&& s) {
  // Only prvalues returned: a Result is large, and a named one returned beside a
  // prvalue is moved, not elided (one call per command would pay it).
  if (!s.ok()) return Result::Refused(s.status());
  return Answer(*std::move(s));
}

template <typename T>
absl::StatusOr<T> Unwrap(Result&& r) {
  if (!r.ok()) return r.status();
  return std::get<T>(std::move(r.value));
}

// The old batch numbering, as journal record type 13 stores it, in order.
constexpr Op kLegacyBatchOps[] = {Op::kAdvance, Op::kCreateUser, Op::kJoin,        Op::kStatus,
                                  Op::kLeave,   Op::kHold,       Op::kHold,        Op::kReleaseSeat,
                                  Op::kCancel,  Op::kCharge,     Op::kPay,         Op::kRefund};
constexpr uint8_t kLegacyHoldBest = 6;

}  // namespace

Result Engine::Apply(const Command& c) {
  if (Oversized(c)) return Result::Refused(Invalid("request too large"));
  if (c.op == Op::kCreateConcert && c.concert == nullptr) {
    return Result::Refused(Invalid("CREATE_CONCERT without a concert"));
  }
  std::lock_guard<std::mutex> lock(mu_);
  return ApplyHeld(c);
}

Result Engine::ApplyHeld(const Command& c) {
  if (c.legacy_batch.has_value()) {
    return ApplyBatchRecord(*c.legacy_batch, /*legacy=*/true, &batch_scratch_);
  }
  if (!ValidNow(c.now) || c.op >= Op::kCount) {
    return Result::Refused(ValidNow(c.now) ? Invalid("unknown op") : InvalidNow(c.now));
  }
  // Moving the clock is what every query does too, with or without a journal.
  if (sink_ != nullptr && c.op != Op::kAdvance) {
    if (absl::Status s = sink_->Accepting(); !s.ok()) return Result::Refused(std::move(s));
  }
  if (c.op == Op::kCreateConcert) {
    // Validation is pure, so a refused concert is journaled as what it did:
    // moving the clock (an absurdly large spec never reaches the journal).
    if (absl::Status s = ValidateConcert(*c.concert, config_.limits,
                                         static_cast<int64_t>(concerts_.size()));
        !s.ok()) {
      RecordQuery(c.now);
      AdvanceLocked(c.now);
      return Result::Refused(std::move(s));
    }
  }
  if (c.op == Op::kAdvance) {
    RecordQuery(c.now);
  } else {
    RecordCommand(c);
  }
  AdvanceLocked(c.now);
  return ApplyLocked(c);
}

Result Engine::ApplyLocked(const Command& c) {
  switch (c.op) {
    case Op::kAdvance:
      return Result{};
    case Op::kCreateUser:
      return Wrap(CreateUserLocked());
    case Op::kCreateConcert:
      return Wrap(absl::StatusOr<ConcertView>(CreateConcertLocked(*c.concert)));
    case Op::kJoin:
      return Wrap(JoinLocked(c.user, c.target));
    case Op::kStatus:
      return Wrap(StatusLocked(c.user, c.token));
    case Op::kLeave:
      return Wrap(LeaveLocked(c.user, c.token));
    case Op::kGate: {
      Refusal refused;
      if (GateLocked(c.user, c.token, c.target, &refused) == nullptr) {
        return Result::Refused(std::move(refused));
      }
      return Answer(ViewToken(c.token));
    }
    case Op::kHold: {
      HoldArgs a;
      a.user_id = c.user;
      a.token_id = c.token;
      a.schedule_id = c.target;
      a.seat_ids = c.seats;
      a.quantity = c.quantity;
      a.grade = c.grade;
      a.idempotency_key = c.key;
      return Wrap(HoldLocked(a));
    }
    case Op::kReleaseSeat:
      return Wrap(ReleaseSeatLocked(c.user, c.target, c.arg));
    case Op::kCancel:
      return Wrap(CancelLocked(c.user, c.target));
    case Op::kCharge:
      return Wrap(ChargeLocked(c.user, c.arg, c.key));
    case Op::kPay:
      return Wrap(PayLocked(c.user, c.token, c.target, c.key));
    case Op::kRefund:
      return Wrap(RefundLocked(c.user, c.target));
    case Op::kCount:
      break;
  }
  return Result::Refused(Invalid("unknown op"));
}

absl::Status Engine::BatchToCommand(const BatchCommand& b, bool legacy, Command* out) const {
  Op op = Op::kCount;
  if (legacy) {
    if (b.op < std::size(kLegacyBatchOps)) op = kLegacyBatchOps[b.op];
  } else if (b.op < kOpCount && b.op != static_cast<uint8_t>(Op::kCreateConcert)) {
    op = static_cast<Op>(b.op);
  }
  if (op == Op::kCount) return Invalid("unknown batch op");
  // `out` is reused across a batch: every field is set, and the strings and the seat
  // list keep their buffers (a batch applies millions of records).
  Command& c = *out;
  c.op = op;
  c.now = b.now_us;
  c.user = b.user;
  c.token = b.token;
  c.target = b.target;
  c.arg = op == Op::kHold ? 0 : b.arg;
  c.quantity = 0;
  c.grade.clear();
  c.key.clear();
  c.seats.clear();
  if (op != Op::kHold) return absl::OkStatus();
  const bool best = legacy ? b.op == kLegacyHoldBest : b.arg == 0;
  if (!best) {
    if (b.quantity > config_.limits.seats_per_reservation_max || b.quantity > 64) {
      return MakeError(ErrorCode::kTooManySeats,
                       absl::StrCat("at most ", config_.limits.seats_per_reservation_max,
                                    " seats per reservation, asked for ", b.quantity));
    }
    c.seats.resize(b.quantity);
    for (int k = 0; k < b.quantity; ++k) {
      // Seat 0 exists nowhere: an overflowing range fails as SEAT_NOT_FOUND.
      if (__builtin_add_overflow(b.arg, k, &c.seats[static_cast<size_t>(k)])) {
        c.seats[static_cast<size_t>(k)] = 0;
      }
    }
    return absl::OkStatus();
  }
  c.quantity = b.quantity;
  if (b.grade != 0) {
    if (b.target < 1 || b.target > static_cast<int64_t>(schedules_.size())) {
      return MakeError(ErrorCode::kScheduleNotFound, absl::StrCat("no schedule ", b.target));
    }
    const Concert& concert = *concerts_[static_cast<size_t>(
        schedules_[static_cast<size_t>(b.target - 1)]->concert_id() - 1)];
    if (b.grade > concert.grades.size()) {
      return Invalid(absl::StrCat("concert ", concert.id, " has no grade ", b.grade));
    }
    c.grade = concert.grades[b.grade - 1u];
  }
  return absl::OkStatus();
}

namespace {

void PutResult(const Result& res, BatchResult& out) {
  out = BatchResult{};
  out.code = static_cast<uint16_t>(res.code);
  if (const auto* id = std::get_if<UserId>(&res.value)) {
    out.id = *id;
  } else if (const auto* t = std::get_if<TokenView>(&res.value)) {
    out.id = t->id;
    out.status = static_cast<uint8_t>(t->status);
    out.value = t->position;
  } else if (const auto* r = std::get_if<Reservation>(&res.value)) {
    out.id = r->id;
    out.status = static_cast<uint8_t>(r->status);
    out.value = r->amount;
  } else if (const auto* ch = std::get_if<ChargeResult>(&res.value)) {
    out.id = ch->entry_id;
    out.value = ch->balance;
  } else if (const auto* p = std::get_if<Payment>(&res.value)) {
    out.id = p->id;
    out.value = p->amount;
    out.status = static_cast<uint8_t>(ReservationStatus::kConfirmed);
  }
}

}  // namespace

Result Engine::ApplyBatchRecord(const BatchCommand& b, bool legacy, Command* scratch) {
  const bool known = legacy ? b.op < std::size(kLegacyBatchOps)
                            : b.op < kOpCount && b.op != static_cast<uint8_t>(Op::kCreateConcert);
  if (!ValidNow(b.now_us) || !known) return Result::Refused(Invalid("unknown batch op"));
  if (sink_ != nullptr) {
    if (absl::Status s = sink_->Accepting(); !s.ok()) return Result::Refused(std::move(s));
  }
  // Every batch record journals exactly one record, so a crash inside a batch keeps
  // a known prefix of it.
  if (absl::Status s = BatchToCommand(b, legacy, scratch); !s.ok()) {
    // Refused on its arguments: all it does is move the clock.
    RecordCommand(MakeCommand(Op::kAdvance, b.now_us));
    AdvanceLocked(b.now_us);
    return Result::Refused(std::move(s));
  }
  RecordCommand(*scratch);
  AdvanceLocked(scratch->now);
  return ApplyLocked(*scratch);
}

void Engine::ApplyBatch(std::span<const BatchCommand> commands, std::span<BatchResult> results) {
  BOXOFFICE_ASSERT(commands.size() == results.size());
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < commands.size(); ++i) {
    PutResult(ApplyBatchRecord(commands[i], /*legacy=*/false, &batch_scratch_), results[i]);
  }
}

// --- the typed calls ------------------------------------------------------------

absl::StatusOr<UserId> Engine::CreateUser(TimeUs now) {
  return Unwrap<UserId>(Apply(MakeCommand(Op::kCreateUser, now)));
}

absl::StatusOr<ConcertView> Engine::CreateConcert(const ConcertSpec& spec, TimeUs now) {
  Command c = MakeCommand(Op::kCreateConcert, now);
  c.concert = std::make_shared<const ConcertSpec>(spec);
  return Unwrap<ConcertView>(Apply(c));
}

absl::StatusOr<TokenView> Engine::JoinQueue(UserId user, ConcertId concert, TimeUs now) {
  return Unwrap<TokenView>(Apply(MakeCommand(Op::kJoin, now, user, 0, concert)));
}

absl::StatusOr<TokenView> Engine::QueueStatus(UserId user, TokenId token, TimeUs now) {
  return Unwrap<TokenView>(Apply(MakeCommand(Op::kStatus, now, user, token)));
}

absl::StatusOr<TokenView> Engine::LeaveQueue(UserId user, TokenId token, TimeUs now) {
  return Unwrap<TokenView>(Apply(MakeCommand(Op::kLeave, now, user, token)));
}

absl::StatusOr<TokenView> Engine::CheckGate(UserId user, TokenId token, ConcertId concert,
                                            TimeUs now) {
  return Unwrap<TokenView>(Apply(MakeCommand(Op::kGate, now, user, token, concert)));
}

absl::StatusOr<Reservation> Engine::Hold(const HoldRequest& request, TimeUs now) {
  Command c = MakeCommand(Op::kHold, now, request.user_id, request.token_id, request.schedule_id);
  c.seats = request.seat_ids;
  c.quantity = request.quantity;
  c.grade = request.grade;
  c.key = request.idempotency_key;
  return Unwrap<Reservation>(Apply(c));
}

absl::StatusOr<Reservation> Engine::ReleaseSeat(UserId user, ReservationId reservation,
                                                SeatId seat, TimeUs now) {
  return Unwrap<Reservation>(
      Apply(MakeCommand(Op::kReleaseSeat, now, user, 0, reservation, seat)));
}

absl::StatusOr<Reservation> Engine::Cancel(UserId user, ReservationId reservation, TimeUs now) {
  return Unwrap<Reservation>(Apply(MakeCommand(Op::kCancel, now, user, 0, reservation)));
}

absl::StatusOr<ChargeResult> Engine::Charge(UserId user, Won amount,
                                            absl::string_view idempotency_key, TimeUs now) {
  Command c = MakeCommand(Op::kCharge, now, user, 0, 0, amount);
  c.key = std::string(idempotency_key);
  return Unwrap<ChargeResult>(Apply(c));
}

absl::StatusOr<Payment> Engine::Pay(UserId user, TokenId token, ReservationId reservation,
                                    absl::string_view idempotency_key, TimeUs now) {
  Command c = MakeCommand(Op::kPay, now, user, token, reservation);
  c.key = std::string(idempotency_key);
  return Unwrap<Payment>(Apply(c));
}

absl::StatusOr<Reservation> Engine::Refund(UserId user, ReservationId reservation, TimeUs now) {
  return Unwrap<Reservation>(Apply(MakeCommand(Op::kRefund, now, user, 0, reservation)));
}

void Engine::Advance(TimeUs now) { (void)Apply(MakeCommand(Op::kAdvance, now)); }


// --- queries -----------------------------------------------------------------

absl::StatusOr<ConcertView> Engine::GetConcert(ConcertId concert, TimeUs now) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!ValidNow(now)) return InvalidNow(now);
  RecordQuery(now);
  AdvanceLocked(now);
  if (concert < 1 || concert > static_cast<int64_t>(concerts_.size())) {
    return MakeError(ErrorCode::kConcertNotFound, absl::StrCat("no concert ", concert));
  }
  return ViewConcert(*concerts_[static_cast<size_t>(concert - 1)]);
}

std::vector<ConcertView> Engine::ListConcerts(absl::string_view query,
                                              std::optional<TimeUs> starts_from,
                                              std::optional<TimeUs> starts_to, TimeUs now) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!ValidNow(now)) now = clock_;  // a read: ignore an impossible time
  RecordQuery(now);
  AdvanceLocked(now);
  const std::string needle = absl::AsciiStrToLower(query);
  std::vector<ConcertView> out;
  for (const auto& c : concerts_) {
    if (!needle.empty() && !absl::StrContains(absl::AsciiStrToLower(c->title), needle) &&
        !absl::StrContains(absl::AsciiStrToLower(c->artist), needle)) {
      continue;
    }
    bool in_range = false;
    for (ScheduleId s : c->schedules) {
      const TimeUs t = schedules_[static_cast<size_t>(s - 1)]->starts_at();
      if ((!starts_from || t >= *starts_from) && (!starts_to || t <= *starts_to)) {
        in_range = true;
        break;
      }
    }
    if (in_range) out.push_back(ViewConcert(*c));
  }
  return out;
}

absl::StatusOr<std::optional<TokenView>> Engine::LiveToken(UserId user, ConcertId concert,
                                                           TimeUs now) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!ValidNow(now)) return InvalidNow(now);
  RecordQuery(now);
  AdvanceLocked(now);
  if (absl::Status s = CheckUser(user); !s.ok()) return s;
  if (concert < 1 || concert > static_cast<int64_t>(concerts_.size())) {
    return MakeError(ErrorCode::kConcertNotFound, absl::StrCat("no concert ", concert));
  }
  const TokenId id = concerts_[static_cast<size_t>(concert - 1)]->queue->LiveToken(user);
  if (id == 0) return std::optional<TokenView>();
  return std::optional<TokenView>(ViewToken(id));
}

absl::StatusOr<std::vector<ScheduleView>> Engine::ListSchedules(ConcertId concert, TimeUs now) {
  absl::StatusOr<ConcertView> c = GetConcert(concert, now);
  if (!c.ok()) return c.status();
  return std::move(c->schedules);
}

absl::StatusOr<std::vector<SeatView>> Engine::ListSeats(ScheduleId schedule,
                                                        std::optional<SeatStatus> status,
                                                        TimeUs now) {
  return ListSeats(schedule, status, 0, std::numeric_limits<int64_t>::max(), now);
}

absl::StatusOr<std::vector<SeatView>> Engine::ListSeats(ScheduleId schedule,
                                                        std::optional<SeatStatus> status,
                                                        SeatId after, int64_t limit,
                                                        TimeUs now) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!ValidNow(now)) return InvalidNow(now);
  RecordQuery(now);
  AdvanceLocked(now);
  if (schedule < 1 || schedule > static_cast<int64_t>(schedules_.size())) {
    return MakeError(ErrorCode::kScheduleNotFound, absl::StrCat("no schedule ", schedule));
  }
  return SeatPageLocked(schedule, status, after, limit);
}

std::vector<SeatView> Engine::SeatPageLocked(ScheduleId schedule,
                                             std::optional<SeatStatus> status, SeatId after,
                                             int64_t limit) const {
  const SeatInventory& s = *schedules_[static_cast<size_t>(schedule - 1)];
  std::vector<SeatView> out;
  const int64_t total = status ? s.count(*status) : s.seat_count();
  out.reserve(static_cast<size_t>(std::max<int64_t>(0, std::min(limit, total))));
  const SeatId end = s.first_seat_id() + s.seat_count();
  for (SeatId id = std::max(s.first_seat_id(), after + 1);
       id < end && static_cast<int64_t>(out.size()) < limit; ++id) {
    const Seat& seat = s.seat(id);
    if (status && seat.status != *status) continue;
    const SeatInventory::Section& section = s.sections()[seat.section];
    SeatView v;
    v.id = id;
    v.schedule_id = schedule;
    v.label = s.Label(id);
    v.section = section.spec.name;
    v.row = seat.row + 1;
    v.number = seat.number + 1;
    v.grade = section.spec.grade;
    v.price = section.spec.price;
    v.status = seat.status;
    out.push_back(std::move(v));
  }
  return out;
}

// The gate is a command (it counts as a poll), so it goes through the one
// preamble and is journaled as a GATE record; the page is a read of the state
// the gate left, under the same lock, so nothing can change in between. Only
// the gate is journaled: the page changes nothing, and replaying the GATE
// record gives the same state.
absl::StatusOr<std::vector<SeatView>> Engine::ListSeatsGated(
    UserId user, TokenId token, ConcertId concert, ScheduleId schedule,
    std::optional<SeatStatus> status, SeatId after, int64_t limit, TimeUs now) {
  std::lock_guard<std::mutex> lock(mu_);
  Result gate = ApplyHeld(MakeCommand(Op::kGate, now, user, token, concert));
  if (!gate.ok()) return gate.status();
  if (schedule < 1 || schedule > static_cast<int64_t>(schedules_.size())) {
    return MakeError(ErrorCode::kScheduleNotFound, absl::StrCat("no schedule ", schedule));
  }
  const ConcertId owner = schedules_[static_cast<size_t>(schedule - 1)]->concert_id();
  if (owner != concert) {
    return MakeError(ErrorCode::kQueueTokenInvalid,
                     absl::StrCat("queue token ", token, " is for concert ", concert,
                                  ", not concert ", owner, " of schedule ", schedule));
  }
  return SeatPageLocked(schedule, status, after, limit);
}

absl::StatusOr<Reservation> Engine::GetReservation(UserId user, ReservationId reservation,
                                                   TimeUs now) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!ValidNow(now)) return InvalidNow(now);
  RecordQuery(now);
  AdvanceLocked(now);
  if (absl::Status s = CheckUser(user); !s.ok()) return s;
  absl::StatusOr<Reservation*> r = OwnedReservation(user, reservation);
  if (!r.ok()) return r.status();
  return **r;
}

absl::StatusOr<std::vector<Reservation>> Engine::ListReservations(UserId user, TimeUs now) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!ValidNow(now)) return InvalidNow(now);
  RecordQuery(now);
  AdvanceLocked(now);
  if (absl::Status s = CheckUser(user); !s.ok()) return s;
  std::vector<Reservation> out;
  for (ReservationId id : users_[static_cast<size_t>(user - 1)].reservations) {
    out.push_back(reservations_[static_cast<size_t>(id - 1)]);
  }
  return out;
}

absl::StatusOr<Won> Engine::Balance(UserId user, TimeUs now) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!ValidNow(now)) return InvalidNow(now);
  RecordQuery(now);
  AdvanceLocked(now);
  if (absl::Status s = CheckUser(user); !s.ok()) return s;
  return ledger_.balance(users_[static_cast<size_t>(user - 1)].account);
}

absl::StatusOr<std::vector<HistoryEntry>> Engine::History(UserId user, TimeUs now) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!ValidNow(now)) return InvalidNow(now);
  RecordQuery(now);
  AdvanceLocked(now);
  if (absl::Status s = CheckUser(user); !s.ok()) return s;
  std::vector<HistoryEntry> out;
  for (EntryId id : users_[static_cast<size_t>(user - 1)].history) {
    out.push_back(ledger_.entry(id));
  }
  return out;
}

absl::StatusOr<std::string> Engine::EncodeQueueDigest(ConcertId concert, TimeUs now) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!ValidNow(now)) return InvalidNow(now);
  RecordQuery(now);
  AdvanceLocked(now);
  if (concert < 1 || concert > static_cast<int64_t>(concerts_.size())) {
    return MakeError(ErrorCode::kConcertNotFound, absl::StrCat("no concert ", concert));
  }
  std::string out;
  absl::Status s = concerts_[static_cast<size_t>(concert - 1)]->queue->EncodeDigest(clock_, &out);
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<ConcertStats> Engine::Stats(ConcertId concert, TimeUs now) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!ValidNow(now)) return InvalidNow(now);
  RecordQuery(now);
  AdvanceLocked(now);
  if (concert < 1 || concert > static_cast<int64_t>(concerts_.size())) {
    return MakeError(ErrorCode::kConcertNotFound, absl::StrCat("no concert ", concert));
  }
  const Concert& c = *concerts_[static_cast<size_t>(concert - 1)];
  ConcertStats s;
  s.concert_id = c.id;
  s.queue_waiting = c.queue->waiting();
  s.queue_active = c.queue->active();
  s.queue_joined_total = c.queue->joined_total();
  s.queue_admitted_total = c.queue->admitted_total();
  s.queue_abandoned_total = c.queue->abandoned_total();
  for (ScheduleId id : c.schedules) {
    const SeatInventory& inv = *schedules_[static_cast<size_t>(id - 1)];
    s.seats_total += inv.seat_count();
    s.seats_available += inv.count(SeatStatus::kAvailable);
    s.seats_held += inv.count(SeatStatus::kHeld);
    s.seats_sold += inv.count(SeatStatus::kSold);
  }
  s.reservations_pending = c.reservations_by_status[0];
  s.reservations_confirmed = c.reservations_by_status[1];
  s.reservations_expired = c.reservations_by_status[2];
  s.reservations_canceled = c.reservations_by_status[3];
  s.reservations_refunded = c.reservations_by_status[4];
  s.payments = c.payments;
  s.revenue = ledger_.balance(c.revenue_account);
  return s;
}

std::vector<Event> Engine::EventsAfter(Seq after, int64_t limit) {
  std::lock_guard<std::mutex> lock(mu_);
  return events_.After(after, std::min(limit, config_.limits.list_limit_max));
}

int64_t Engine::user_count() {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(users_.size());
}

int64_t Engine::concert_count() {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(concerts_.size());
}

Seq Engine::last_event_seq() {
  std::lock_guard<std::mutex> lock(mu_);
  return events_.last_seq();
}

// --- whole-state checks ----------------------------------------------------------

absl::Status Engine::CheckInvariants() {
  std::lock_guard<std::mutex> lock(mu_);
  auto broken = [](absl::string_view what) {
    return MakeError(ErrorCode::kInternal, absl::StrCat("invariant broken: ", what));
  };
  // Seats <-> reservations.
  absl::flat_hash_map<std::pair<UserId, ConcertId>, int64_t> owned;
  for (const Reservation& r : reservations_) {
    const bool live = r.status == ReservationStatus::kPending ||
                      r.status == ReservationStatus::kConfirmed;
    if (!live) continue;
    if (r.seat_ids.empty()) return broken(absl::StrCat("reservation ", r.id, " has no seats"));
    const SeatInventory& s = *schedules_[static_cast<size_t>(r.schedule_id - 1)];
    const SeatStatus want =
        r.status == ReservationStatus::kPending ? SeatStatus::kHeld : SeatStatus::kSold;
    Won amount = 0;
    for (SeatId seat : r.seat_ids) {
      if (!s.Contains(seat) || s.seat(seat).reservation_id != r.id ||
          s.seat(seat).status != want) {
        return broken(absl::StrCat("seat ", seat, " does not match reservation ", r.id));
      }
      amount += s.price(seat);
    }
    if (amount != r.amount) return broken(absl::StrCat("amount of reservation ", r.id));
    if (r.status == ReservationStatus::kPending && r.expires_at <= clock_) {
      return broken(absl::StrCat("reservation ", r.id, " is PENDING after expires_at"));
    }
    owned[std::make_pair(r.user_id, r.concert_id)] += static_cast<int64_t>(r.seat_ids.size());
  }
  if (owned != user_seats_) return broken("per-user seat counts drifted");
  for (const auto& s : schedules_) {
    int64_t counts[3] = {0, 0, 0};
    for (SeatId id = s->first_seat_id(); id < s->first_seat_id() + s->seat_count(); ++id) {
      const Seat& seat = s->seat(id);
      ++counts[static_cast<int>(seat.status)];
      if (seat.status == SeatStatus::kAvailable) {
        if (seat.reservation_id != 0) return broken(absl::StrCat("available seat ", id, " owned"));
        continue;
      }
      const Reservation& r = reservations_[static_cast<size_t>(seat.reservation_id - 1)];
      if (std::find(r.seat_ids.begin(), r.seat_ids.end(), id) == r.seat_ids.end()) {
        return broken(absl::StrCat("seat ", id, " not listed by its reservation"));
      }
    }
    for (int k = 0; k < 3; ++k) {
      if (counts[k] != s->count(static_cast<SeatStatus>(k))) return broken("seat counts drifted");
    }
  }
  // Money.
  if (ledger_.Sum() != 0) return broken("the ledger does not sum to zero");
  for (size_t a = 1; a < ledger_.account_count(); ++a) {
    if (ledger_.balance(static_cast<AccountId>(a)) < 0) {
      return broken(absl::StrCat("account ", a, " is negative"));
    }
  }
  std::vector<Won> paid(concerts_.size(), 0);
  for (const Payment& p : payments_) {
    if (p.status != PaymentStatus::kSucceeded) continue;
    paid[static_cast<size_t>(reservations_[static_cast<size_t>(p.reservation_id - 1)].concert_id -
                             1)] += p.amount;
  }
  for (const auto& c : concerts_) {
    if (ledger_.balance(c->revenue_account) != paid[static_cast<size_t>(c->id - 1)]) {
      return broken(absl::StrCat("revenue of concert ", c->id, " != its payments"));
    }
    if (std::string q = c->queue->CheckInvariants(); !q.empty()) return broken(q);
  }
  return absl::OkStatus();
}

}  // namespace boxoffice
