// Tests of the engine snapshot (snapshot.h): SaveSnapshot / LoadSnapshot.
//
// The main property: a snapshot taken at any point of a random ticket drop
// loads into an engine with the same state hash that then answers every
// further command exactly like the original (so timers, queues, the pre-queue
// shuffle, the admission rate budget and idempotency records all survive),
// and re-saving it gives the same bytes. Also: the empty engine, the config,
// the journal sequence of the cut, snapshots taken while other threads run
// commands, and damage — every truncation, every single-bit flip, wrong
// magic, a newer version, absurd lengths, and random damage behind a valid
// checksum — is refused with a clear status and never crashes (this file
// runs under ASan+UBSan too).
#include "boxoffice/snapshot.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "boxoffice/command.h"
#include "boxoffice/digest.h"
#include "boxoffice/errors.h"

namespace boxoffice {
namespace {

constexpr TimeUs kT0 = 1'700'000'000LL * kMicrosPerSecond;
constexpr DurationUs Sec(int64_t s) { return s * kMicrosPerSecond; }

#define REQUIRE_OK(expr)                                  \
  do {                                                    \
    const auto& require_ok_result_ = (expr);              \
    INFO(#expr << " -> " << require_ok_result_.status()); \
    REQUIRE(require_ok_result_.ok());                     \
  } while (false)

class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}
  int64_t In(int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(gen_);
  }
  bool Chance(int64_t percent) { return In(1, 100) <= percent; }
  template <typename T>
  const T& Pick(const std::vector<T>& v) {
    return v[static_cast<size_t>(In(0, static_cast<int64_t>(v.size()) - 1))];
  }

 private:
  std::mt19937_64 gen_;
};

// --- results as text, so that two engines' answers compare as strings --------

// Not Status::ToString: absl does not promise an order of payloads.
std::string Text(const absl::Status& s) {
  if (s.ok()) return "OK";
  const ErrorDetails d = GetErrorDetails(s);
  return absl::StrCat(absl::StatusCodeToString(s.code()), " ", GetErrorInfo(GetErrorCode(s)).name,
                      " ", s.message(), " pos ", d.position.value_or(-2), " eta ",
                      d.eta_us.value_or(-2), " seat ", d.seat_id.value_or(-2), " retry ",
                      d.retry_after_us.value_or(-2));
}
std::string Text(int64_t v) { return absl::StrCat(v); }
std::string Text(const TokenView& t) {
  return absl::StrCat("token ", t.id, " u", t.user_id, " c", t.concert_id, " ", ToString(t.status),
                      " ", ToString(t.end), " pos ", t.position, " eta ", t.eta_us, " poll ",
                      t.poll_after_us, " ", t.joined_at, " ", t.activated_at, " ", t.expires_at,
                      " ", t.ended_at);
}
std::string Text(const Reservation& r) {
  return absl::StrCat("res ", r.id, " u", r.user_id, " c", r.concert_id, " s", r.schedule_id,
                      " t", r.token_id, " ", ToString(r.status), " [",
                      absl::StrJoin(r.seat_ids, ","), "] ", r.amount, " ", r.created_at, " ",
                      r.expires_at, " ", r.ended_at, " p", r.payment_id);
}
std::string Text(const ChargeResult& c) {
  return absl::StrCat("charge ", c.entry_id, " u", c.user_id, " ", c.amount, " -> ", c.balance,
                      " @", c.at);
}
std::string Text(const Payment& p) {
  return absl::StrCat("payment ", p.id, " r", p.reservation_id, " u", p.user_id, " ", p.amount,
                      " ", ToString(p.status), " @", p.paid_at, " -> ", p.balance_after);
}
std::string Text(const ScheduleView& s) {
  return absl::StrCat("schedule ", s.id, " c", s.concert_id, " @", s.starts_at, " ", s.seats_total,
                      "/", s.seats_available, "/", s.seats_held, "/", s.seats_sold);
}
std::string Text(const ConcertView& c) {
  const SaleSettings& s = c.sale;
  std::string out = absl::StrCat(
      "concert ", c.id, " ", c.title, "|", c.artist, "|", c.venue, " @", c.created_at, " sale ",
      s.opens_at, " ", s.queue_capacity, " ", s.admission_per_minute, " ", s.session_ttl_us, " ",
      s.hold_ttl_us, " ", s.max_seats_per_reservation, " ", s.max_seats_per_user, " ",
      s.release_on_payment_failure ? 1 : 0, " ", s.abandon_timeout_us, " ", s.poll_interval_us,
      " grades ", absl::StrJoin(c.grades, ","));
  for (const ScheduleView& v : c.schedules) absl::StrAppend(&out, " ", Text(v));
  return out;
}
std::string Text(const SeatView& s) {
  return absl::StrCat(s.id, ":", s.label, ":", s.grade, ":", s.price, ":", ToString(s.status));
}
std::string Text(const HistoryEntry& h) {
  return absl::StrCat("entry ", h.id, " u", h.user_id, " ", ToString(h.kind), " ", h.amount, " -> ",
                      h.balance_after, " @", h.at, " r", h.reservation_id);
}
std::string Text(const ConcertStats& s) {
  return absl::StrCat("stats ", s.concert_id, " q ", s.queue_waiting, "/", s.queue_active, "/",
                      s.queue_joined_total, "/", s.queue_admitted_total, "/",
                      s.queue_abandoned_total, " seats ", s.seats_total, "/", s.seats_available,
                      "/", s.seats_held, "/", s.seats_sold, " res ", s.reservations_pending, "/",
                      s.reservations_confirmed, "/", s.reservations_expired, "/",
                      s.reservations_canceled, "/", s.reservations_refunded, " paid ", s.payments,
                      " revenue ", s.revenue);
}
std::string Text(const Event& e) {
  return absl::StrCat(e.seq, ":", ToString(e.type), "@", e.at, " u", e.user_id, " c",
                      e.concert_id, " t", e.token_id, " r", e.reservation_id, " ", e.amount, " ",
                      e.value);
}
std::string Text(const BatchResult& r) {
  return absl::StrCat("[", r.code, " ", r.status, " ", r.id, " ", r.value, "]");
}
template <typename T>
std::string Text(const std::vector<T>& v) {
  std::string out = "{";
  for (const T& x : v) absl::StrAppend(&out, Text(x), "; ");
  return out + "}";
}
template <typename T>
std::string Text(const absl::StatusOr<T>& r) {
  return r.ok() ? Text(*r) : Text(r.status());
}

// --- a random ticket drop ------------------------------------------------------

enum class Op {
  kCreateUser, kCreateConcert, kJoin, kStatus, kLeave, kGate, kHold, kRelease, kCancel,
  kCharge, kPay, kRefund, kAdvance, kQuery, kEvents, kBatch,
};

struct Cmd {
  Op op = Op::kAdvance;
  TimeUs now = 0;
  UserId user = 0;
  TokenId token = 0;
  int64_t target = 0;
  int64_t arg = 0;
  int query = 0;
  std::string key;
  HoldRequest hold;
  ConcertSpec spec;
  std::vector<BatchCommand> batch;
};

struct Outcome {
  std::string text;
  UserId user = 0;
  std::optional<ConcertView> concert;
  std::optional<TokenView> token;
  std::optional<Reservation> reservation;
};

Outcome Apply(Engine& e, const Cmd& c) {
  Outcome o;
  switch (c.op) {
    case Op::kCreateUser: {
      auto r = e.CreateUser(c.now);
      o.text = Text(r);
      if (r.ok()) o.user = *r;
      break;
    }
    case Op::kCreateConcert: {
      auto r = e.CreateConcert(c.spec, c.now);
      o.text = Text(r);
      if (r.ok()) o.concert = *r;
      break;
    }
    case Op::kJoin:
    case Op::kStatus:
    case Op::kLeave:
    case Op::kGate: {
      auto r = c.op == Op::kJoin     ? e.JoinQueue(c.user, c.target, c.now)
               : c.op == Op::kStatus ? e.QueueStatus(c.user, c.token, c.now)
               : c.op == Op::kLeave  ? e.LeaveQueue(c.user, c.token, c.now)
                                     : e.CheckGate(c.user, c.token, c.target, c.now);
      o.text = Text(r);
      if (r.ok()) o.token = *r;
      break;
    }
    case Op::kHold:
    case Op::kRelease:
    case Op::kCancel:
    case Op::kRefund: {
      auto r = c.op == Op::kHold      ? e.Hold(c.hold, c.now)
               : c.op == Op::kRelease ? e.ReleaseSeat(c.user, c.target, c.arg, c.now)
               : c.op == Op::kCancel  ? e.Cancel(c.user, c.target, c.now)
                                      : e.Refund(c.user, c.target, c.now);
      o.text = Text(r);
      if (r.ok()) o.reservation = *r;
      break;
    }
    case Op::kCharge:
      o.text = Text(e.Charge(c.user, c.arg, c.key, c.now));
      break;
    case Op::kPay:
      o.text = Text(e.Pay(c.user, c.token, c.target, c.key, c.now));
      break;
    case Op::kAdvance:
      e.Advance(c.now);
      o.text = absl::StrCat("clock ", e.clock());
      break;
    case Op::kQuery:
      switch (c.query) {
        case 0: o.text = Text(e.GetReservation(c.user, c.target, c.now)); break;
        case 1: o.text = Text(e.ListReservations(c.user, c.now)); break;
        case 2: o.text = Text(e.Balance(c.user, c.now)); break;
        case 3: o.text = Text(e.History(c.user, c.now)); break;
        case 4: o.text = Text(e.Stats(c.target, c.now)); break;
        case 5:
          o.text = Text(e.ListSeats(c.target,
                                    c.arg < 3 ? std::optional<SeatStatus>(
                                                    static_cast<SeatStatus>(c.arg))
                                              : std::nullopt,
                                    c.now));
          break;
        case 6: o.text = Text(e.GetConcert(c.target, c.now)); break;
        default: o.text = Text(e.ListConcerts("", std::nullopt, std::nullopt, c.now)); break;
      }
      break;
    case Op::kEvents:
      o.text = absl::StrCat(Text(e.EventsAfter(c.arg, c.target)), " last ", e.last_event_seq());
      break;
    case Op::kBatch: {
      std::vector<BatchResult> results(c.batch.size());
      e.ApplyBatch(c.batch, results);
      o.text = Text(results);
      break;
    }
  }
  return o;
}

SectionSpec Section(std::string name, int64_t rows, int64_t seats_per_row, std::string grade,
                    Won price) {
  SectionSpec s;
  s.name = std::move(name);
  s.rows = rows;
  s.seats_per_row = seats_per_row;
  s.grade = std::move(grade);
  s.price = price;
  return s;
}

// Generates random commands from what it learned of the original engine's
// answers (ids of users, concerts, tokens, reservations), with some invalid
// ids mixed in so that error paths run too.
class World {
 public:
  explicit World(uint64_t seed) : rng_(seed), now_(kT0) {}

  Rng& rng() { return rng_; }
  TimeUs now() const { return now_; }
  int64_t users() const { return users_; }
  int64_t concerts() const { return static_cast<int64_t>(concerts_.size()); }
  int64_t schedules() const { return static_cast<int64_t>(schedules_.size()); }
  const std::vector<std::pair<UserId, TokenId>>& tokens() const { return token_ids_; }

  // Two concerts (the first opens later, through a pre-queue) and users.
  std::vector<Cmd> Setup() {
    std::vector<Cmd> out;
    for (int k = 0; k < 2; ++k) {
      Cmd c;
      c.op = Op::kCreateConcert;
      c.now = now_;
      c.spec.title = k == 0 ? "Pre-queue Tour" : "Open Tour";
      c.spec.artist = "Artist";
      c.spec.venue = "Hall";
      const int64_t schedules = rng_.In(1, 2);
      for (int64_t s = 0; s < schedules; ++s) {
        ScheduleSpec sch;
        sch.starts_at = kT0 + Sec(86'400 * (s + 1));
        sch.sections = {Section("A", 2, 6, "VIP", 100'000), Section("B", 3, 5, "R", 50'000)};
        c.spec.schedules.push_back(sch);
      }
      SaleSettings& sale = c.spec.sale;
      sale.opens_at = k == 0 ? now_ + Sec(rng_.In(20, 90)) : kNever;
      sale.queue_capacity = rng_.In(2, 4);
      sale.admission_per_minute = rng_.Chance(50) ? kNoLimit : rng_.In(6, 60);
      sale.session_ttl_us = Sec(rng_.In(60, 240));
      sale.hold_ttl_us = Sec(rng_.In(20, 90));
      sale.abandon_timeout_us = Sec(rng_.In(15, 60));
      sale.poll_interval_us = Sec(5);
      sale.max_seats_per_reservation = 4;
      sale.max_seats_per_user = rng_.Chance(50) ? kNoLimit : rng_.In(2, 6);
      sale.release_on_payment_failure = rng_.Chance(50);
      out.push_back(c);
    }
    for (int i = 0; i < 30; ++i) {
      Cmd c;
      c.op = Op::kCreateUser;
      c.now = now_;
      out.push_back(c);
    }
    return out;
  }

  Cmd Next() {
    Cmd c;
    now_ += rng_.In(0, 1'500'000);
    c.now = rng_.Chance(5) ? now_ - rng_.In(0, Sec(3)) : now_;  // a late thread
    const int64_t roll = rng_.In(1, 100);
    if (roll <= 2) {
      c.op = Op::kCreateUser;
    } else if (roll <= 16) {
      c.op = Op::kJoin;
      c.user = User();
      c.target = rng_.Chance(5) ? concerts() + 1 : rng_.In(1, concerts());
    } else if (roll <= 30) {
      c.op = rng_.Chance(70) ? Op::kStatus : (rng_.Chance(50) ? Op::kLeave : Op::kGate);
      if (rng_.Chance(20)) c.op = Op::kLeave;
      PickToken(c);
      c.target = rng_.Chance(5) ? rng_.In(1, concerts()) : TokenConcert(c.token);
    } else if (roll <= 48) {
      c.op = Op::kHold;
      PickToken(c);
      const ConcertId concert = TokenConcert(c.token);
      HoldRequest& h = c.hold;
      h.user_id = c.user;
      h.token_id = c.token;
      h.schedule_id = rng_.Chance(5) || concert == 0
                          ? rng_.In(1, schedules() + 1)
                          : rng_.Pick(concerts_[static_cast<size_t>(concert - 1)]);
      const auto [first, count] = SeatRange(h.schedule_id);
      if (rng_.Chance(55)) {
        const int64_t n = rng_.Chance(5) ? 5 : rng_.In(1, 3);
        for (int64_t i = 0; i < n; ++i) {
          h.seat_ids.push_back(rng_.Chance(3) ? rng_.In(1, 500) : first + rng_.In(0, count - 1));
        }
      } else {
        h.quantity = rng_.Chance(5) ? rng_.In(0, 6) : rng_.In(1, 3);
        const int64_t g = rng_.In(1, 10);
        h.grade = g <= 2 ? "VIP" : g == 3 ? "R" : g == 4 ? "NOPE" : "";
      }
      if (rng_.Chance(30)) h.idempotency_key = absl::StrCat("h", rng_.In(0, 3));
    } else if (roll <= 56) {
      c.op = rng_.Chance(60) ? Op::kRelease : Op::kCancel;
      PickReservation(c);
    } else if (roll <= 58) {
      c.op = Op::kRefund;
      PickReservation(c);
    } else if (roll <= 66) {
      c.op = Op::kCharge;
      c.user = User();
      const Won amounts[] = {10'000, 50'000, 100'000, 300'000, 0, -5, 20'000'000, 99'000'000};
      c.arg = amounts[rng_.In(0, 7)];
      if (rng_.Chance(40)) c.key = absl::StrCat("c", rng_.In(0, 3));
    } else if (roll <= 78) {
      c.op = Op::kPay;
      PickReservation(c);
      c.token = LatestToken(c.user, ReservationConcert(c.target));
      if (rng_.Chance(5)) c.token = rng_.In(0, static_cast<int64_t>(token_ids_.size()) + 1);
      if (rng_.Chance(40)) c.key = absl::StrCat("p", rng_.In(0, 3));
    } else if (roll <= 82) {
      c.op = Op::kAdvance;
      now_ += Sec(rng_.In(20, 400));
      c.now = now_;
    } else if (roll <= 92) {
      c.op = Op::kQuery;
      c.query = static_cast<int>(rng_.In(0, 7));
      c.user = User();
      c.target = c.query == 0   ? rng_.In(0, static_cast<int64_t>(reservations_.size()) + 1)
                 : c.query == 5 ? rng_.In(1, schedules() + 1)
                                : rng_.In(1, concerts() + 1);
      c.arg = rng_.In(0, 3);
    } else if (roll <= 94) {
      c.op = Op::kEvents;
      c.arg = rng_.In(0, 400);
      c.target = rng_.In(0, 40);
    } else {
      c.op = Op::kBatch;
      const int64_t n = rng_.In(1, 4);
      for (int64_t i = 0; i < n; ++i) {
        BatchCommand b;
        b.now_us = c.now + i * 1000;
        const int64_t kind = rng_.In(0, 5);
        Cmd tmp;
        PickToken(tmp);
        b.user = tmp.user;
        b.token = tmp.token;
        switch (kind) {
          case 0:
            b.op = static_cast<uint8_t>(Op::kJoin);
            b.target = rng_.In(1, concerts());
            break;
          case 1:
            b.op = static_cast<uint8_t>(Op::kStatus);
            break;
          case 2:
            b.op = static_cast<uint8_t>(Op::kHold);
            b.target = rng_.In(1, schedules());
            b.quantity = static_cast<uint16_t>(rng_.In(1, 3));
            b.grade = static_cast<uint8_t>(rng_.In(0, 2));
            break;
          case 3:
            b.op = static_cast<uint8_t>(Op::kCharge);
            b.arg = 200'000;
            break;
          case 4: {
            PickReservation(tmp);
            b.op = static_cast<uint8_t>(Op::kPay);
            b.user = tmp.user;
            b.target = tmp.target;
            b.token = LatestToken(tmp.user, ReservationConcert(tmp.target));
            break;
          }
          default:
            b.op = static_cast<uint8_t>(Op::kAdvance);
            break;
        }
        c.batch.push_back(b);
      }
    }
    return c;
  }

  // Learns ids from the original engine's answer.
  void Learn(const Cmd& c, const Outcome& o) {
    if (o.user != 0) users_ = std::max(users_, o.user);
    if (o.concert) {
      std::vector<ScheduleId> ids;
      for (const ScheduleView& s : o.concert->schedules) {
        ids.push_back(s.id);
        schedules_.push_back({next_seat_, s.seats_total});
        next_seat_ += s.seats_total;
      }
      concerts_.push_back(ids);
    }
    if (o.token && c.op == Op::kJoin) {
      const TokenView& t = *o.token;
      if (t.id > static_cast<int64_t>(token_ids_.size())) {
        token_ids_.push_back({t.user_id, t.id});
        token_concert_.push_back(t.concert_id);
      }
    }
    if (o.reservation) {
      const Reservation& r = *o.reservation;
      if (r.id > static_cast<int64_t>(reservations_.size())) {
        reservations_.push_back({r.user_id, r.concert_id});
      }
      seats_of_[r.id] = std::vector<SeatId>(r.seat_ids.begin(), r.seat_ids.end());
    }
  }

 private:
  UserId User() { return rng_.Chance(3) ? rng_.In(0, users_ + 1) : rng_.In(1, users_); }
  void PickToken(Cmd& c) {
    if (token_ids_.empty() || rng_.Chance(3)) {
      c.user = User();
      c.token = rng_.In(0, static_cast<int64_t>(token_ids_.size()) + 1);
      return;
    }
    const auto& [user, token] = rng_.Pick(token_ids_);
    c.user = rng_.Chance(3) ? User() : user;
    c.token = token;
  }
  ConcertId TokenConcert(TokenId t) const {
    if (t < 1 || t > static_cast<int64_t>(token_concert_.size())) return 0;
    return token_concert_[static_cast<size_t>(t - 1)];
  }
  void PickReservation(Cmd& c) {
    if (reservations_.empty() || rng_.Chance(4)) {
      c.user = User();
      c.target = rng_.In(0, static_cast<int64_t>(reservations_.size()) + 1);
    } else {
      c.target = rng_.In(1, static_cast<int64_t>(reservations_.size()));
      c.user = reservations_[static_cast<size_t>(c.target - 1)].first;
    }
    auto it = seats_of_.find(c.target);
    c.arg = it != seats_of_.end() && !it->second.empty() && rng_.Chance(90)
                ? rng_.Pick(it->second)
                : rng_.In(1, 200);
  }
  ConcertId ReservationConcert(ReservationId r) const {
    if (r < 1 || r > static_cast<int64_t>(reservations_.size())) return 0;
    return reservations_[static_cast<size_t>(r - 1)].second;
  }
  TokenId LatestToken(UserId user, ConcertId concert) const {
    for (size_t i = token_ids_.size(); i > 0; --i) {
      if (token_ids_[i - 1].first == user && token_concert_[i - 1] == concert) {
        return token_ids_[i - 1].second;
      }
    }
    return 0;
  }
  std::pair<SeatId, int64_t> SeatRange(ScheduleId s) const {
    if (s < 1 || s > schedules()) return {1, 10};
    return schedules_[static_cast<size_t>(s - 1)];
  }

  Rng rng_;
  TimeUs now_;
  UserId users_ = 0;
  std::vector<std::vector<ScheduleId>> concerts_;
  std::vector<std::pair<SeatId, int64_t>> schedules_;  // first seat, seat count
  SeatId next_seat_ = 1;
  std::vector<std::pair<UserId, TokenId>> token_ids_;
  std::vector<ConcertId> token_concert_;
  std::vector<std::pair<UserId, ConcertId>> reservations_;
  std::map<ReservationId, std::vector<SeatId>> seats_of_;
};

// Everything a user of the engine can read, as text (the queries advance
// the clock and touch tokens the same way on every engine).
std::string Observe(Engine& e, World& w, TimeUs now) {
  std::string out;
  for (UserId u = 0; u <= w.users() + 1; ++u) {
    absl::StrAppend(&out, Text(e.ListReservations(u, now)), Text(e.Balance(u, now)),
                    Text(e.History(u, now)), "\n");
  }
  for (ConcertId c = 1; c <= w.concerts() + 1; ++c) {
    absl::StrAppend(&out, Text(e.GetConcert(c, now)), Text(e.Stats(c, now)), "\n");
  }
  for (ScheduleId s = 1; s <= w.schedules() + 1; ++s) {
    absl::StrAppend(&out, Text(e.ListSeats(s, std::nullopt, now)), "\n");
  }
  for (const auto& [user, token] : w.tokens()) {
    absl::StrAppend(&out, Text(e.QueueStatus(user, token, now)), "\n");
  }
  absl::StrAppend(&out, Text(e.EventsAfter(0, 1'000'000)), " last ", e.last_event_seq(), " clock ",
                  e.clock(), " hash ", e.StateHash(), " ", Text(e.CheckInvariants()));
  return out;
}

EngineConfig DropConfig(uint64_t seed) {
  EngineConfig config;
  config.seed = seed * 0x9e3779b97f4a7c15ULL;
  if (seed % 2 == 1) {
    config.limits.event_retention_max = 64;  // the log drops old events
    config.limits.idempotency_ttl_us = Sec(300);  // records expire during the drop
  }
  return config;
}

std::unique_ptr<Engine> RoundTrip(Engine& source) {
  const uint64_t hash = source.StateHash();
  const std::string bytes = SaveSnapshot(source);
  absl::StatusOr<std::unique_ptr<Engine>> loaded = LoadSnapshot(bytes);
  REQUIRE_OK(loaded);
  std::unique_ptr<Engine> engine = std::move(*loaded);
  REQUIRE(engine->StateHash() == hash);
  REQUIRE(SaveSnapshot(*engine) == bytes);  // nothing lost, nothing added
  REQUIRE(engine->CheckInvariants().ok());
  REQUIRE(source.StateHash() == hash);  // saving changed nothing
  return engine;
}

// ---------------------------------------------------------------------------

TEST_CASE("a snapshot at any point of a random drop restores an engine that behaves the same",
          "[snapshot]") {
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    INFO("seed " << seed);
    World world(seed);
    std::vector<std::unique_ptr<Engine>> engines;
    engines.push_back(std::make_unique<Engine>(DropConfig(seed)));
    auto run = [&](const Cmd& c, int64_t step) {
      const Outcome first = Apply(*engines[0], c);
      for (size_t k = 1; k < engines.size(); ++k) {
        const Outcome other = Apply(*engines[k], c);
        INFO("step " << step << ", engine " << k << " (restored)");
        REQUIRE(other.text == first.text);
      }
      world.Learn(c, first);
    };
    for (const Cmd& c : world.Setup()) run(c, -1);
    int snapshots = 0;
    for (int64_t step = 0; step < 1500; ++step) {
      run(world.Next(), step);
      if (step == 2 || step == 15 || step == 40 || world.rng().Chance(2)) {
        // Snapshot any engine, restored ones too (a chain of restores).
        Engine& source = *engines[static_cast<size_t>(
            world.rng().In(0, static_cast<int64_t>(engines.size()) - 1))];
        INFO("snapshot at step " << step);
        engines.push_back(RoundTrip(source));
        if (engines.size() > 4) engines.erase(engines.begin() + 1);
        ++snapshots;
      }
    }
    CHECK(snapshots >= 10);
    const TimeUs end = world.now() + Sec(1);
    const std::string expected = Observe(*engines[0], world, end);
    for (size_t k = 1; k < engines.size(); ++k) {
      INFO("restored engine " << k);
      REQUIRE(Observe(*engines[k], world, end) == expected);
    }
    REQUIRE(engines[0]->CheckInvariants().ok());
  }
}

TEST_CASE("the pre-queue shuffle, the admission budget and idempotent replays survive a snapshot",
          "[snapshot]") {
  EngineConfig config;
  config.seed = 42;
  Engine engine(config);
  ConcertSpec spec;
  spec.title = "T";
  ScheduleSpec sch;
  sch.starts_at = kT0 + Sec(86'400);
  sch.sections = {Section("A", 2, 10, "VIP", 10'000)};
  spec.schedules = {sch};
  spec.sale.opens_at = kT0 + Sec(60);
  spec.sale.queue_capacity = 3;
  spec.sale.admission_per_minute = 2;  // one admission every 30 s
  REQUIRE_OK(engine.CreateConcert(spec, kT0));
  std::vector<std::pair<UserId, TokenId>> users;
  for (int i = 0; i < 12; ++i) {
    const UserId u = *engine.CreateUser(kT0);
    auto t = engine.JoinQueue(u, 1, kT0 + Sec(1));
    REQUIRE_OK(t);
    CHECK(t->position == -1);  // pre-queue
    users.push_back({u, t->id});
  }
  REQUIRE_OK(engine.Charge(1, 50'000, "key-1", kT0 + Sec(2)));

  std::unique_ptr<Engine> restored = RoundTrip(engine);
  // The same charge key returns the stored result on both, once.
  CHECK(Text(engine.Charge(1, 50'000, "key-1", kT0 + Sec(3))) ==
        Text(restored->Charge(1, 50'000, "key-1", kT0 + Sec(3))));
  CHECK(*restored->Balance(1, kT0 + Sec(3)) == 50'000);
  // Opening: same shuffle, same paced admissions, polled by everybody.
  for (TimeUs t = kT0 + Sec(55); t <= kT0 + Sec(200); t += Sec(5)) {
    for (const auto& [u, token] : users) {
      const std::string a = Text(engine.QueueStatus(u, token, t));
      REQUIRE(a == Text(restored->QueueStatus(u, token, t)));
    }
  }
  CHECK(engine.StateHash() == restored->StateHash());
}

TEST_CASE("an empty engine round-trips, config included", "[snapshot]") {
  Engine plain;
  std::unique_ptr<Engine> a = RoundTrip(plain);
  CHECK(a->limits().users_max == Limits{}.users_max);

  EngineConfig config;
  config.seed = 0xdeadbeefcafef00dULL;
  config.limits.users_max = 7;
  config.limits.charge_amount_max = 1234;
  config.limits.event_retention_max = 0;
  Engine custom(config);
  std::unique_ptr<Engine> b = RoundTrip(custom);
  CHECK(b->limits().users_max == 7);
  CHECK(b->limits().charge_amount_max == 1234);
  CHECK(b->limits().event_retention_max == 0);
  for (int i = 0; i < 8; ++i) {
    CHECK(Text(custom.CreateUser(kT0)) == Text(b->CreateUser(kT0)));
  }
  CHECK(Text(custom.Charge(1, 2000, "", kT0)) == Text(b->Charge(1, 2000, "", kT0)));
  CHECK(custom.StateHash() == b->StateHash());
}

TEST_CASE("a snapshot reports and keeps the journal sequence of its cut", "[snapshot]") {
  struct CountingSink : CommandSink {
    Seq Record(const Command&) override { return ++seq; }
    Seq seq = 0;
  } sink;
  Engine engine;
  Seq seq = -1;
  (void)SaveSnapshot(engine, &seq);
  CHECK(seq == 0);
  engine.SetCommandSink(&sink);
  for (int i = 0; i < 5; ++i) REQUIRE_OK(engine.CreateUser(kT0));
  const std::string bytes = SaveSnapshot(engine, &seq);
  CHECK(seq == 5);
  engine.SetCommandSink(nullptr);
  absl::StatusOr<std::unique_ptr<Engine>> loaded = LoadSnapshot(bytes);
  REQUIRE_OK(loaded);
  Seq restored = -1;
  CHECK(SaveSnapshot(**loaded, &restored) == bytes);
  CHECK(restored == 5);
}

TEST_CASE("snapshots taken while other threads run commands are consistent cuts", "[snapshot]") {
  Engine engine;
  ConcertSpec spec;
  spec.title = "T";
  ScheduleSpec sch;
  sch.starts_at = kT0 + Sec(86'400);
  sch.sections = {Section("A", 20, 20, "VIP", 10'000)};
  spec.schedules = {sch};
  spec.sale.queue_capacity = 4;
  REQUIRE_OK(engine.CreateConcert(spec, kT0));
  std::atomic<int64_t> clock{0};
  std::atomic<int> running{2};
  auto worker = [&] {
    for (int i = 0; i < 300; ++i) {
      const TimeUs now = kT0 + clock.fetch_add(1000);
      absl::StatusOr<UserId> u = engine.CreateUser(now);
      if (!u.ok()) break;
      (void)engine.Charge(*u, 100'000, "", now);
      absl::StatusOr<TokenView> t = engine.JoinQueue(*u, 1, now);
      if (!t.ok()) continue;
      HoldRequest h;
      h.user_id = *u;
      h.token_id = t->id;
      h.schedule_id = 1;
      h.quantity = 2;
      absl::StatusOr<Reservation> r = engine.Hold(h, now);
      if (r.ok() && i % 3 != 0) (void)engine.Pay(*u, t->id, r->id, "", now);
      (void)engine.LeaveQueue(*u, t->id, now);
    }
    --running;
  };
  std::thread a(worker);
  std::thread b(worker);
  int snapshots = 0;
  int failures = 0;
  while (running.load() > 0 || snapshots < 5) {
    absl::StatusOr<std::unique_ptr<Engine>> loaded = LoadSnapshot(SaveSnapshot(engine));
    if (!loaded.ok()) ++failures;
    ++snapshots;
  }
  a.join();
  b.join();
  CHECK(failures == 0);
  std::unique_ptr<Engine> last = RoundTrip(engine);
  CHECK(last->StateHash() == engine.StateHash());
}

// --- damage ----------------------------------------------------------------------

// A small engine touching every part of the state.
std::string SmallSnapshot() {
  EngineConfig config;
  config.seed = 7;
  config.limits.event_retention_max = 40;
  Engine e(config);
  ConcertSpec spec;
  spec.title = "Small";
  ScheduleSpec sch;
  sch.starts_at = kT0 + Sec(86'400);
  sch.sections = {Section("A", 2, 4, "VIP", 10'000), Section("B", 1, 4, "R", 5'000)};
  spec.schedules = {sch};
  spec.sale.queue_capacity = 2;
  spec.sale.admission_per_minute = 6;
  REQUIRE_OK(e.CreateConcert(spec, kT0));
  spec.title = "Later";
  spec.sale.opens_at = kT0 + Sec(600);
  REQUIRE_OK(e.CreateConcert(spec, kT0));
  for (int i = 0; i < 5; ++i) REQUIRE_OK(e.CreateUser(kT0));
  for (UserId u = 1; u <= 5; ++u) {
    REQUIRE_OK(e.JoinQueue(u, 1, kT0 + Sec(1)));
    REQUIRE_OK(e.JoinQueue(u, 2, kT0 + Sec(1)));
  }
  REQUIRE_OK(e.Charge(1, 100'000, "c", kT0 + Sec(2)));
  HoldRequest h;
  h.user_id = 1;
  h.token_id = 1;
  h.schedule_id = 1;
  h.seat_ids = {1, 2};
  h.idempotency_key = "h";
  auto r1 = e.Hold(h, kT0 + Sec(2));
  REQUIRE_OK(r1);
  REQUIRE_OK(e.Pay(1, 1, r1->id, "p", kT0 + Sec(3)));
  h.user_id = 2;
  h.token_id = 3;
  h.seat_ids = {};
  h.quantity = 2;
  h.idempotency_key = "";
  REQUIRE_OK(e.Hold(h, kT0 + Sec(12)));  // token 3 admitted at 11 s (6 per minute)
  return SaveSnapshot(e);
}

std::string Resealed(std::string bytes) {
  // Rewrites the body length and the checksum after a change to the body.
  const uint64_t body = bytes.size() - 16 - 8;
  for (int i = 0; i < 8; ++i) {
    bytes[8 + static_cast<size_t>(i)] = static_cast<char>((body >> (8 * i)) & 0xff);
  }
  Digest d;
  d.Mix(absl::string_view(bytes).substr(0, bytes.size() - 8));
  const uint64_t sum = d.value();
  for (int i = 0; i < 8; ++i) {
    bytes[bytes.size() - 8 + static_cast<size_t>(i)] = static_cast<char>((sum >> (8 * i)) & 0xff);
  }
  return bytes;
}

std::string VersionOneSnapshot();  // a snapshot of format version 1 (below)

bool IsRefusal(const absl::Status& s) {
  return s.code() == absl::StatusCode::kDataLoss ||
         (s.code() == absl::StatusCode::kInvalidArgument &&
          GetErrorCode(s) == ErrorCode::kInvalidArgument);
}

TEST_CASE("every truncation of a snapshot is refused", "[snapshot][damage]") {
  const std::string bytes = GENERATE(SmallSnapshot(), VersionOneSnapshot());
  REQUIRE_OK(LoadSnapshot(bytes));
  for (size_t n = 0; n < bytes.size(); ++n) {
    absl::StatusOr<std::unique_ptr<Engine>> r = LoadSnapshot(absl::string_view(bytes).substr(0, n));
    INFO("length " << n << ": " << r.status());
    REQUIRE(!r.ok());
    REQUIRE(r.status().code() == absl::StatusCode::kDataLoss);
  }
  CHECK(absl::StrContains(LoadSnapshot(bytes.substr(0, bytes.size() - 1)).status().message(),
                          "truncated"));
}

TEST_CASE("every single-bit flip of a snapshot is refused", "[snapshot][damage]") {
  const std::string bytes = GENERATE(SmallSnapshot(), VersionOneSnapshot());
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string damaged = bytes;
      damaged[i] = static_cast<char>(damaged[i] ^ (1 << bit));
      absl::StatusOr<std::unique_ptr<Engine>> r = LoadSnapshot(damaged);
      INFO("byte " << i << " bit " << bit << ": " << r.status());
      REQUIRE(!r.ok());
      REQUIRE(IsRefusal(r.status()));
    }
  }
  std::string damaged = bytes;
  damaged[40] = static_cast<char>(damaged[40] ^ 4);
  const absl::Status s = LoadSnapshot(damaged).status();
  CHECK(s.code() == absl::StatusCode::kDataLoss);
  CHECK(absl::StrContains(s.message(), "checksum"));
}

// Random damage behind a valid checksum (what a bug in a writer or a forged
// file could give): refused, or an engine that passes its invariants and
// keeps working — never a crash, an assertion or undefined behaviour.
TEST_CASE("damage behind a valid checksum is refused or loads a sound engine",
          "[snapshot][damage]") {
  const std::string bytes = GENERATE(SmallSnapshot(), VersionOneSnapshot());
  Rng rng(2024);
  int loaded = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string body = bytes.substr(16, bytes.size() - 24);
    const int64_t edits = rng.In(1, 3);
    for (int64_t k = 0; k < edits; ++k) {
      const auto at = static_cast<size_t>(rng.In(0, static_cast<int64_t>(body.size()) - 1));
      switch (rng.In(0, 3)) {
        case 0: body[at] = static_cast<char>(body[at] ^ (1 << rng.In(0, 7))); break;
        case 1: body[at] = static_cast<char>(rng.In(0, 255)); break;
        case 2: body.erase(at, 1); break;
        default: body.insert(at, 1, static_cast<char>(rng.In(0, 255))); break;
      }
    }
    const std::string damaged = Resealed(bytes.substr(0, 16) + body + std::string(8, '\0'));
    absl::StatusOr<std::unique_ptr<Engine>> r = LoadSnapshot(damaged);
    if (!r.ok()) {
      INFO(r.status());
      REQUIRE(r.status().code() == absl::StatusCode::kDataLoss);
      continue;
    }
    ++loaded;
    Engine& e = **r;
    REQUIRE(e.CheckInvariants().ok());
    // Keep using it: random commands with small ids.
    const TimeUs base = std::max(e.clock(), kT0);
    for (int i = 0; i < 60; ++i) {
      const TimeUs now = base + i * Sec(7);
      const UserId u = rng.In(0, 6);
      const TokenId t = rng.In(0, 12);
      switch (rng.In(0, 8)) {
        case 0: (void)e.JoinQueue(u, rng.In(0, 3), now); break;
        case 1: (void)e.QueueStatus(u, t, now); break;
        case 2: (void)e.LeaveQueue(u, t, now); break;
        case 3: {
          HoldRequest h;
          h.user_id = u;
          h.token_id = t;
          h.schedule_id = rng.In(0, 3);
          if (rng.Chance(50)) {
            h.seat_ids = {rng.In(0, 30)};
          } else {
            h.quantity = rng.In(1, 3);
          }
          (void)e.Hold(h, now);
          break;
        }
        case 4: (void)e.Charge(u, rng.In(1, 200'000), rng.Chance(50) ? "c" : "", now); break;
        case 5: (void)e.Pay(u, t, rng.In(0, 4), rng.Chance(50) ? "p" : "", now); break;
        case 6: (void)e.Refund(u, rng.In(0, 4), now); break;
        case 7: (void)e.ReleaseSeat(u, rng.In(0, 4), rng.In(0, 30), now); break;
        default: (void)e.Cancel(u, rng.In(0, 4), now); break;
      }
    }
    REQUIRE(e.CheckInvariants().ok());
    REQUIRE_OK(LoadSnapshot(SaveSnapshot(e)));
  }
  INFO("loaded " << loaded << " of 3000 damaged snapshots");
  CHECK(loaded < 3000);
}

TEST_CASE("wrong magic and newer versions are refused with a clear message", "[snapshot]") {
  const std::string bytes = SmallSnapshot();
  for (const std::string& other :
       {std::string("hello, world, this is not a snapshot"),
        std::string("BXSNAQ") + bytes.substr(6), std::string("SQLite format 3")}) {
    const absl::Status s = LoadSnapshot(other).status();
    CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    CHECK(GetErrorCode(s) == ErrorCode::kInvalidArgument);
    CHECK(absl::StrContains(s.message(), "not a boxoffice snapshot"));
  }
  std::string newer = bytes;
  newer[6] = static_cast<char>(kSnapshotVersion + 1);
  newer = Resealed(newer);  // a well-formed file: the version alone refuses it
  const absl::Status s = LoadSnapshot(newer).status();
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(absl::StrContains(s.message(), "newer"));
  CHECK(absl::StrContains(s.message(), "upgrade"));
  CHECK(!LoadSnapshot("").ok());
  CHECK(!LoadSnapshot("BXS").ok());
}

// Skips one LEB128 varint at `pos`.
void SkipVarint(const std::string& s, size_t& pos) {
  while (static_cast<uint8_t>(s[pos]) & 0x80) ++pos;
  ++pos;
}

TEST_CASE("an absurd count is refused before anything is allocated", "[snapshot][damage]") {
  Engine empty;
  const std::string bytes = SaveSnapshot(empty);
  // Body: [config tag, 18 limits, seed] [clock tag, clock, journal seq] [accounts tag, count, ...]
  size_t pos = 16;
  REQUIRE(bytes[pos++] == 1);
  for (int i = 0; i < 19; ++i) SkipVarint(bytes, pos);
  REQUIRE(bytes[pos++] == 2);
  SkipVarint(bytes, pos);  // clock
  SkipVarint(bytes, pos);  // journal seq
  REQUIRE(bytes[pos++] == 3);
  REQUIRE(bytes[pos] == 1);  // one account: funding
  for (const std::string& count :
       {std::string("\xff\xff\xff\xff\xff\xff\xff\xff\x7f"),  // 2^63 - 1
        std::string("\x80\x80\x80\x80\x04"),                    // 2^30
        std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f")}) {  // over 64 bits
    const std::string damaged =
        Resealed(bytes.substr(0, pos) + count + bytes.substr(pos + 1));
    const absl::Status s = LoadSnapshot(damaged).status();
    INFO(s);
    CHECK(s.code() == absl::StatusCode::kDataLoss);
    CHECK((absl::StrContains(s.message(), "do not fit") ||
           absl::StrContains(s.message(), "64 bits")));
  }
}


// --- format version 1 ---------------------------------------------------------------

// A small drop that leaves a queue token in every state the token table can hold,
// at kT0 + 200 s: WAITING in an open queue (polled out of join order) and in a
// pre-queue that has not opened; ACTIVE; EXPIRED after leaving while WAITING, after
// leaving while ACTIVE, after paying, after the session ran out, after being
// abandoned (and polled since), and after leaving a pre-queue; a pre-queue drawn at
// opening and paced by an admission budget; a pending hold and a payment.
// tests/cpp/data/snapshot-v1.bin is SaveSnapshot of it written by format version 1
// (commit 53b8ba3, before the compact queue token), and kVersionOneHash its state hash.
struct VersionOneTokens {
  std::vector<std::pair<UserId, TokenId>> tokens;  // every token, in id order
};

VersionOneTokens VersionOneDrop(Engine& e) {
  VersionOneTokens out;
  auto at = [](int64_t s) { return kT0 + Sec(s); };
  ScheduleSpec sch;
  sch.starts_at = kT0 + Sec(86'400);
  sch.sections = {Section("A", 2, 5, "VIP", 30'000), Section("B", 2, 5, "R", 20'000)};
  ConcertSpec open;
  open.title = "Open";
  open.schedules = {sch};
  open.sale.queue_capacity = 2;
  open.sale.abandon_timeout_us = Sec(60);
  ConcertSpec drawn = open;
  drawn.title = "Drawn";
  drawn.sale.opens_at = at(100);
  drawn.sale.queue_capacity = 1;
  drawn.sale.admission_per_minute = 2;
  drawn.sale.session_ttl_us = Sec(30);
  drawn.sale.abandon_timeout_us = Sec(300);
  ConcertSpec closed = open;
  closed.title = "Closed";
  closed.sale.opens_at = at(86'400);
  closed.sale.abandon_timeout_us = Sec(3'600);
  REQUIRE_OK(e.CreateConcert(open, kT0));
  REQUIRE_OK(e.CreateConcert(drawn, kT0));
  REQUIRE_OK(e.CreateConcert(closed, kT0));
  for (int i = 0; i < 10; ++i) REQUIRE_OK(e.CreateUser(kT0));
  auto join = [&](UserId u, ConcertId c, int64_t s) {
    auto t = e.JoinQueue(u, c, at(s));
    REQUIRE_OK(t);
    REQUIRE(t->id == static_cast<TokenId>(out.tokens.size()) + 1);
    out.tokens.push_back({u, t->id});
    return t->id;
  };
  auto poll = [&](TokenId t, int64_t s) {
    REQUIRE_OK(e.QueueStatus(out.tokens[static_cast<size_t>(t - 1)].first, t, at(s)));
  };
  // Concert 1, capacity 2: tokens 1-6 join; 1, 2 are admitted at once.
  for (UserId u = 1; u <= 6; ++u) join(u, 1, 1);
  REQUIRE_OK(e.LeaveQueue(3, 3, at(2)));  // leaves while WAITING
  REQUIRE_OK(e.Charge(1, 200'000, "", at(3)));
  HoldRequest h;
  h.user_id = 1;
  h.token_id = 1;
  h.schedule_id = 1;
  h.quantity = 2;
  auto held = e.Hold(h, at(3));
  REQUIRE_OK(held);
  REQUIRE_OK(e.Pay(1, 1, held->id, "", at(3)));  // completes token 1: token 4 is admitted
  REQUIRE_OK(e.LeaveQueue(2, 2, at(5)));         // leaves while ACTIVE: token 5 is admitted
  for (UserId u = 7; u <= 9; ++u) join(u, 1, 10);  // tokens 7-9 WAIT behind token 6
  // Concert 2 opens at 100 s through a pre-queue, one admission per 30 s.
  for (UserId u = 1; u <= 5; ++u) join(u, 2, 20);  // tokens 10-14
  REQUIRE_OK(e.LeaveQueue(3, 12, at(50)));         // leaves the pre-queue
  // Concert 3 stays closed: tokens 15, 16 wait in its pre-queue.
  join(1, 3, 60);
  join(2, 3, 60);
  // Token 7 never polls: abandoned at 70 s, and polls once after that.
  poll(8, 30);
  poll(6, 40);
  poll(9, 65);
  poll(7, 80);
  poll(8, 85);
  poll(6, 95);
  for (UserId u = 6; u <= 9; ++u) join(u, 2, 105);  // tokens 17-20, behind the draw
  poll(9, 120);
  poll(8, 140);
  poll(6, 150);
  h.user_id = 5;
  h.token_id = 5;
  h.quantity = 1;
  REQUIRE_OK(e.Hold(h, at(150)));  // still PENDING at 200 s
  poll(9, 170);
  poll(8, 195);
  poll(6, 199);
  e.Advance(at(200));
  return out;
}

// The state hash of VersionOneDrop, as format version 1's code computed it.
constexpr uint64_t kVersionOneHash = 10030870891261512157ULL;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string VersionOneSnapshot() {
  const std::string bytes = ReadFile(BOXOFFICE_TEST_DATA_DIR "/snapshot-v1.bin");
  REQUIRE(bytes.size() > 16);
  REQUIRE(bytes[6] == 1);  // format version 1, little-endian uint16
  REQUIRE(bytes[7] == 0);
  return bytes;
}

TEST_CASE("a format version 1 snapshot loads into the state a fresh run reaches", "[snapshot]") {
  const std::string old_bytes = VersionOneSnapshot();
  absl::StatusOr<std::unique_ptr<Engine>> loaded = LoadSnapshot(old_bytes);
  REQUIRE_OK(loaded);
  Engine& old_engine = **loaded;
  REQUIRE(old_engine.CheckInvariants().ok());
  Engine fresh;
  const VersionOneTokens drop = VersionOneDrop(fresh);
  // The hash mixes what a user sees of each token, not the record's layout: it is
  // the one version 1's code computed, for the loaded state and for a fresh run.
  CHECK(fresh.StateHash() == kVersionOneHash);
  CHECK(old_engine.StateHash() == kVersionOneHash);
  // Saved again it is version 2, the very bytes the fresh run saves, and smaller.
  const std::string new_bytes = SaveSnapshot(old_engine);
  CHECK(new_bytes[6] == kSnapshotVersion);
  CHECK(new_bytes == SaveSnapshot(fresh));
  CHECK(new_bytes.size() < old_bytes.size());
  // Both answer alike from there on: sessions end, the WAITING are admitted or
  // abandon (every third token stops polling), the pending hold expires.
  for (int64_t s = 200; s <= 900; s += 7) {
    const TimeUs now = kT0 + Sec(s);
    for (const auto& [user, token] : drop.tokens) {
      if ((token + s) % 3 == 0 && s > 300) continue;
      INFO("token " << token << " at " << s << " s");
      REQUIRE(Text(old_engine.QueueStatus(user, token, now)) ==
              Text(fresh.QueueStatus(user, token, now)));
    }
    for (ConcertId c = 1; c <= 3; ++c) {
      REQUIRE(Text(old_engine.Stats(c, now)) == Text(fresh.Stats(c, now)));
    }
  }
  CHECK(Text(old_engine.EventsAfter(0, 1'000'000)) == Text(fresh.EventsAfter(0, 1'000'000)));
  CHECK(Text(old_engine.ListReservations(5, kT0 + Sec(900))) ==
        Text(fresh.ListReservations(5, kT0 + Sec(900))));
  CHECK(old_engine.StateHash() == fresh.StateHash());
  CHECK(old_engine.CheckInvariants().ok());
}

// Appends `v` as LEB128.
void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

TEST_CASE("a version 1 ACTIVE token whose stored session end does not follow is damage",
          "[snapshot][damage]") {
  // Token 13 of the fixture: joined at 20 s, ACTIVE since 190 s, session TTL 30 s.
  // Its three last times, as version 1 wrote them: deltas from joined_at, zigzag + 1.
  auto times = [](DurationUs activated, DurationUs expires) {
    std::string out;
    PutVarint(out, static_cast<uint64_t>(activated) * 2 + 1);
    PutVarint(out, static_cast<uint64_t>(expires) * 2 + 1);
    out.push_back('\0');  // ended_at: kNever
    return out;
  };
  const std::string bytes = VersionOneSnapshot();
  const std::string stored = times(Sec(170), Sec(200));
  const size_t at = bytes.find(stored);
  REQUIRE(at != std::string::npos);
  REQUIRE(bytes.find(stored, at + 1) == std::string::npos);
  // The session said to end one microsecond later (a varint of the same length).
  std::string forged = bytes;
  forged.replace(at, stored.size(), times(Sec(170), Sec(200) + 1));
  REQUIRE(forged.size() == bytes.size());
  const absl::Status s = LoadSnapshot(Resealed(forged)).status();
  CHECK(s.code() == absl::StatusCode::kDataLoss);
  CHECK(absl::StrContains(s.message(), "token 13 is inconsistent with its state"));
  REQUIRE_OK(LoadSnapshot(Resealed(bytes)));  // the untouched bytes load
}


// --- format version 2, byte for byte ----------------------------------------------

// VersionOneDrop, then a fourth concert that fills every other table of the state:
// idempotency records of each kind (charge, hold, payment), a refund, a payment that
// failed and released its seats, a released seat, an expired and a canceled
// reservation, per-user seat counts, and an event log that has dropped its oldest
// events (retention 40). tests/cpp/data/snapshot-v2.bin is SaveSnapshot of it at
// kT0 + 235 s, written by the snapshot code before each component encoded its own
// state (engine_state.cc), and kVersionTwoHash its state hash: both must stay.
EngineConfig EveryTableConfig() {
  EngineConfig config;
  config.seed = 7;
  config.limits.event_retention_max = 40;
  return config;
}

void EveryTableDrop(Engine& e) {
  VersionOneDrop(e);
  auto at = [](int64_t s) { return kT0 + Sec(s); };
  ScheduleSpec sch;
  sch.starts_at = kT0 + Sec(2 * 86'400);
  sch.sections = {Section("F", 2, 4, "VIP", 30'000), Section("G", 1, 6, "R", 20'000)};
  ConcertSpec spec;
  spec.title = "Short";
  spec.artist = "Every Table";
  spec.venue = "Hall";
  spec.schedules = {sch};
  spec.sale.queue_capacity = 3;
  spec.sale.hold_ttl_us = Sec(10);
  spec.sale.max_seats_per_user = 3;
  spec.sale.release_on_payment_failure = true;
  REQUIRE_OK(e.CreateConcert(spec, at(200)));
  std::vector<TokenId> token(5, 0);  // by user
  for (UserId u = 1; u <= 4; ++u) {
    auto t = e.JoinQueue(u, 4, at(201));
    REQUIRE_OK(t);
    token[static_cast<size_t>(u)] = t->id;
  }
  REQUIRE_OK(e.Charge(1, 100'000, "charge-1", at(202)));
  REQUIRE_OK(e.Charge(1, 100'000, "charge-1", at(202)));  // a replay: nothing changes
  REQUIRE_OK(e.Charge(2, 5'000, "", at(202)));
  HoldRequest h;
  h.schedule_id = 4;
  auto hold = [&](UserId u, int64_t quantity, std::string key, int64_t s) {
    h.user_id = u;
    h.token_id = token[static_cast<size_t>(u)];
    h.quantity = quantity;
    h.idempotency_key = std::move(key);
    auto r = e.Hold(h, at(s));
    REQUIRE_OK(r);
    return *r;
  };
  const Reservation paid = hold(1, 2, "hold-1", 203);
  REQUIRE_OK(e.Pay(1, token[1], paid.id, "pay-1", at(204)));  // user 4 is admitted
  const Reservation failed = hold(2, 2, "", 205);
  CHECK_FALSE(e.Pay(2, token[2], failed.id, "", at(206)).ok());  // released at once
  const Reservation expired = hold(3, 3, "", 207);
  REQUIRE_OK(e.ReleaseSeat(3, expired.id, expired.seat_ids[0], at(208)));
  e.Advance(at(230));  // expired at 217 s
  const Reservation canceled = hold(4, 1, "", 231);
  REQUIRE_OK(e.Cancel(4, canceled.id, at(232)));
  REQUIRE_OK(e.Refund(1, paid.id, at(233)));
  hold(4, 2, "hold-4", 234);  // still PENDING at 235 s
  REQUIRE_OK(e.Charge(5, 40'000, "charge-5", at(234)));
  e.Advance(at(235));
}

// The state hash of EveryTableDrop.
constexpr uint64_t kVersionTwoHash = 15240298492158971636ULL;

TEST_CASE("a format version 2 snapshot written earlier loads and saves to the same bytes",
          "[snapshot]") {
  const std::string bytes = ReadFile(BOXOFFICE_TEST_DATA_DIR "/snapshot-v2.bin");
  REQUIRE(bytes.size() > 16);
  REQUIRE(bytes[6] == 2);  // format version 2, little-endian uint16
  REQUIRE(bytes[7] == 0);
  absl::StatusOr<std::unique_ptr<Engine>> loaded = LoadSnapshot(bytes);
  REQUIRE_OK(loaded);
  CHECK((*loaded)->StateHash() == kVersionTwoHash);
  CHECK(SaveSnapshot(**loaded) == bytes);
  // A fresh run of the same commands reaches that state and writes those bytes.
  Engine fresh(EveryTableConfig());
  EveryTableDrop(fresh);
  CHECK(fresh.StateHash() == kVersionTwoHash);
  CHECK(SaveSnapshot(fresh) == bytes);
  CHECK(fresh.CheckInvariants().ok());
  CHECK((*loaded)->CheckInvariants().ok());
}

}  // namespace
}  // namespace boxoffice
