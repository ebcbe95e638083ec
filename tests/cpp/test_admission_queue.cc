// Tests of AdmissionQueue driven directly, the way the engine drives it: with
// its own token table, HoldTimer and EventLog, and a loop that fires due
// deadlines into the queue's callbacks before every call.
//
// Covers FIFO admission up to capacity, exact positions when tokens leave from
// the middle (also past the Fenwick tree's first 1024 slots), abandon and
// session expiry at their exact deadlines, the admission rate (GCRA ticks),
// the seeded pre-queue shuffle and the ETA formula of docs/engine-rules.md.
#include "boxoffice/admission_queue.h"

#include <catch2/catch.hpp>

#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "boxoffice/errors.h"
#include "boxoffice/limits.h"
#include "boxoffice/queue_digest.h"
#include "boxoffice/snapshot_io.h"

namespace boxoffice {
namespace {

constexpr ConcertId kConcert = 3;
constexpr TimeUs kT0 = 1'700'000'000LL * kMicrosPerSecond;
constexpr DurationUs Sec(int64_t s) { return s * kMicrosPerSecond; }
constexpr int64_t kNoQueueLimit = 5'000'000;

std::string StatusName(TokenStatus s) { return std::string(ToString(s)); }
std::string EndName(TokenEnd e) { return std::string(ToString(e)); }

// A token as its queue tells it: the record, its id (its index), its join
// sequence with -1 for none, and the times the queue derives (AdmissionQueue::Times).
struct TokenFacts : TokenRecord, TokenTimes {
  TokenId id = 0;
  int64_t join_seq = -1;  // hides the record's 32-bit field
};

// The queue plus the engine-owned structures it works on.
class Harness {
 public:
  explicit Harness(const QueueSettings& settings, TimeUs created_at = kT0, uint64_t seed = 7)
      : queue(kConcert, settings, created_at, &tokens, &timer, &events, &live), seed_(seed) {
    if (settings.opens_at > created_at) {
      // The opening deadline may be scheduled by the queue itself or by the
      // engine that owns it; make sure exactly one exists.
      bool has_open = false;
      timer.ForEach([&](const TimerEntry& e) {
        has_open = has_open || (e.kind == TimerKind::kQueueOpen && e.id == kConcert);
      });
      if (!has_open) timer.Schedule(settings.opens_at, TimerKind::kQueueOpen, kConcert);
    }
  }

  // Fires every deadline <= now, in order, as the engine does.
  void Advance(TimeUs now) {
    while (std::optional<TimerEntry> e = timer.PopDue(now)) {
      switch (e->kind) {
        case TimerKind::kQueueOpen:
          REQUIRE(e->id == kConcert);
          queue.OnOpen(e->at, seed_);
          break;
        case TimerKind::kSessionExpiry:
          queue.OnSessionExpiry(e->id, e->at);
          break;
        case TimerKind::kAbandon:
          REQUIRE(e->id == kConcert);
          queue.OnAbandonDue(e->at);
          break;
        case TimerKind::kAdmissionTick:
          REQUIRE(e->id == kConcert);
          queue.OnAdmissionTick(e->at);
          break;
        default:
          FAIL("the queue scheduled an unexpected timer kind "
               << static_cast<int>(e->kind));
      }
    }
  }

  TokenId Join(UserId user, TimeUs now, int64_t queue_length_max = kNoQueueLimit) {
    Advance(now);
    absl::StatusOr<TokenId> id = queue.Join(user, now, queue_length_max);
    INFO(id.status().ToString());
    REQUIRE(id.ok());
    REQUIRE(*id > 0);
    REQUIRE(static_cast<size_t>(*id) < tokens.size());
    return *id;
  }
  void Leave(TokenId id, TimeUs now) {
    Advance(now);
    queue.Leave(id, now);
  }
  void Touch(TokenId id, TimeUs now) {
    Advance(now);
    queue.Touch(id, now);
  }
  void Complete(TokenId id, TimeUs now) {
    Advance(now);
    queue.Complete(id, now);
  }

  TokenFacts token(TokenId id) const {
    const TokenRecord& t = tokens[static_cast<size_t>(id)];
    return TokenFacts{{t}, queue.Times(t), id, t.JoinSeq()};
  }

  // Tokens in admission order, as told by their activation events.
  std::vector<TokenId> AdmittedOrder() const {
    std::vector<TokenId> out;
    for (const Event& e : events.After(0, 100'000'000)) {
      if (e.type == EventType::kQueueAdmitted) out.push_back(e.token_id);
    }
    return out;
  }
  int64_t CountEvents(EventType type) const {
    int64_t n = 0;
    for (const Event& e : events.After(0, 100'000'000)) n += e.type == type ? 1 : 0;
    return n;
  }
  int64_t CountTimers(TimerKind kind) const {
    int64_t n = 0;
    timer.ForEach([&](const TimerEntry& e) { n += e.kind == kind ? 1 : 0; });
    return n;
  }
  // A live entry: the timer cancels lazily, so a stale one may still be there
  // (an ended session, the abandon entry of a token no longer WAITING).
  bool HasTimer(TimerKind kind, int64_t id) const {
    bool found = false;
    timer.ForEach([&](const TimerEntry& e) {
      if (e.kind != kind || e.id != id) return;
      const TokenFacts t = token(id);
      if (kind == TimerKind::kSessionExpiry && (t.status != TokenStatus::kActive || t.expires_at != e.at)) return;
      found = true;
    });
    // Abandon deadlines: one entry per queue (the front of its abandon line), so
    // a token has one while it WAITs and the queue has an entry scheduled.
    if (kind == TimerKind::kAbandon) {
      bool queue_entry = false;
      timer.ForEach([&](const TimerEntry& e) {
        queue_entry = queue_entry || (e.kind == kind && e.id == kConcert);
      });
      return queue_entry && token(id).status == TokenStatus::kWaiting;
    }
    return found;
  }
  // Brute-force oracle for Position: WAITING tokens with a lower join sequence.
  int64_t ExpectedPosition(TokenId id) const {
    const TokenFacts t = token(id);
    if (t.status != TokenStatus::kWaiting || t.join_seq < 0) return -1;
    int64_t ahead = 0;
    for (size_t i = 1; i < tokens.size(); ++i) {
      const TokenFacts o = token(static_cast<TokenId>(i));
      if (o.status == TokenStatus::kWaiting && o.join_seq >= 0 && o.join_seq < t.join_seq) ++ahead;
    }
    return ahead;
  }
  void CheckQueueInvariants() const {
    const std::string problem = queue.CheckInvariants();
    INFO(problem);
    CHECK(problem.empty());
    int64_t active = 0;
    for (size_t i = 1; i < tokens.size(); ++i) active += tokens[i].status == TokenStatus::kActive;
    CHECK(active == queue.active());
    CHECK(queue.active() <= queue.settings().queue_capacity);
  }

  std::vector<TokenRecord> tokens = std::vector<TokenRecord>(1);  // index = TokenId; 0 unused
  HoldTimer timer;
  EventLog events{1'000'000};
  LiveTokens live;
  AdmissionQueue queue;

 private:
  uint64_t seed_;
};

QueueSettings Settings(int64_t capacity) {
  QueueSettings s;
  s.queue_capacity = capacity;
  s.session_ttl_us = Sec(600);
  s.abandon_timeout_us = Sec(3'600);
  s.poll_interval_us = Sec(5);
  s.opens_at = kNever;
  return s;
}

TEST_CASE("the first `capacity` joiners are ACTIVE at once, the rest WAIT in join order",
          "[admission_queue]") {
  Harness h(Settings(3));
  REQUIRE(h.queue.open());
  std::vector<TokenId> ids;
  for (UserId u = 1; u <= 6; ++u) ids.push_back(h.Join(u, kT0 + Sec(u)));

  for (size_t i = 0; i < ids.size(); ++i) {
    const TokenFacts t = h.token(ids[i]);
    INFO("token " << ids[i]);
    CHECK(t.id == ids[i]);
    CHECK(t.user_id == static_cast<UserId>(i + 1));
    CHECK(t.concert_id == kConcert);
    CHECK(t.joined_at == kT0 + Sec(static_cast<int64_t>(i + 1)));
    if (i < 3) {
      CHECK(StatusName(t.status) == "ACTIVE");
      CHECK(t.activated_at == t.joined_at);
      CHECK(t.expires_at == t.activated_at + Sec(600));
      CHECK(h.queue.Position(ids[i]) == -1);
    } else {
      CHECK(StatusName(t.status) == "WAITING");
      CHECK(t.activated_at == kNever);
      CHECK(h.queue.Position(ids[i]) == static_cast<int64_t>(i - 3));
    }
  }
  // Token ids are dense from 1 in join order.
  CHECK(ids == std::vector<TokenId>{1, 2, 3, 4, 5, 6});
  CHECK(h.queue.active() == 3);
  CHECK(h.queue.waiting() == 3);
  CHECK(h.queue.joined_total() == 6);
  CHECK(h.queue.admitted_total() == 3);
  CHECK(h.CountEvents(EventType::kQueueJoined) == 6);
  CHECK(h.AdmittedOrder() == std::vector<TokenId>{1, 2, 3});
  // Admitted tokens have a session deadline, waiting ones an abandon deadline.
  CHECK(h.HasTimer(TimerKind::kSessionExpiry, 1));
  CHECK_FALSE(h.HasTimer(TimerKind::kAbandon, 1));
  CHECK(h.HasTimer(TimerKind::kAbandon, 4));
  CHECK_FALSE(h.HasTimer(TimerKind::kSessionExpiry, 4));
  h.CheckQueueInvariants();
}

TEST_CASE("joining again returns the same live token and counts as a poll",
          "[admission_queue]") {
  QueueSettings s = Settings(1);
  s.abandon_timeout_us = Sec(60);
  Harness h(s);
  const TokenId a = h.Join(1, kT0);
  const TokenId b = h.Join(2, kT0);
  CHECK(h.Join(1, kT0 + Sec(1)) == a);
  CHECK(h.Join(2, kT0 + Sec(50)) == b);
  CHECK(h.token(b).last_seen_at == kT0 + Sec(50));
  CHECK(h.queue.joined_total() == 2);
  CHECK(h.CountEvents(EventType::kQueueJoined) == 2);
  CHECK(h.queue.LiveToken(1) == a);
  CHECK(h.queue.LiveToken(2) == b);
  CHECK(h.queue.LiveToken(3) == 0);
  // The re-join moved the abandon deadline: at the original one b still waits.
  h.Advance(kT0 + Sec(60));
  CHECK(StatusName(h.token(b).status) == "WAITING");
  h.Advance(kT0 + Sec(110));
  CHECK(EndName(h.token(b).end) == "ABANDONED");
  CHECK(h.queue.LiveToken(2) == 0);
  // Once the token has ended, joining again yields a new token at the back.
  const TokenId b2 = h.Join(2, kT0 + Sec(111));
  CHECK(b2 != b);
  CHECK(StatusName(h.token(b2).status) == "WAITING");
}

TEST_CASE("QUEUE_FULL when queue_length_max live tokens exist", "[admission_queue]") {
  Harness h(Settings(1));
  const TokenId a = h.Join(1, kT0, 3);
  h.Join(2, kT0, 3);
  const TokenId c = h.Join(3, kT0, 3);
  absl::StatusOr<TokenId> full = h.queue.Join(4, kT0, 3);
  REQUIRE_FALSE(full.ok());
  CHECK(GetErrorCode(full.status()) == ErrorCode::kQueueFull);
  CHECK(h.queue.joined_total() == 3);
  // A user who already has a live token still gets it back.
  absl::StatusOr<TokenId> again = h.queue.Join(3, kT0, 3);
  REQUIRE(again.ok());
  CHECK(*again == c);
  // When a live token ends, there is room again.
  h.Leave(a, kT0 + Sec(1));
  CHECK(h.Join(4, kT0 + Sec(1), 3) > 0);
  h.CheckQueueInvariants();
}

TEST_CASE("leaving frees the slot for the next in join order at the leave time",
          "[admission_queue]") {
  Harness h(Settings(2));
  const TokenId a = h.Join(1, kT0);
  const TokenId b = h.Join(2, kT0);
  const TokenId c = h.Join(3, kT0 + Sec(1));
  const TokenId d = h.Join(4, kT0 + Sec(2));
  REQUIRE(StatusName(h.token(c).status) == "WAITING");

  h.Leave(b, kT0 + Sec(10));
  CHECK(StatusName(h.token(b).status) == "EXPIRED");
  CHECK(EndName(h.token(b).end) == "LEFT");
  CHECK(h.token(b).ended_at == kT0 + Sec(10));
  CHECK_FALSE(h.HasTimer(TimerKind::kSessionExpiry, b));
  CHECK(StatusName(h.token(c).status) == "ACTIVE");
  CHECK(h.token(c).activated_at == kT0 + Sec(10));
  CHECK(h.token(c).expires_at == kT0 + Sec(610));
  CHECK_FALSE(h.HasTimer(TimerKind::kAbandon, c));
  CHECK(h.queue.Position(d) == 0);

  // A WAITING token that leaves gives no slot away and nobody is admitted.
  const TokenId e = h.Join(5, kT0 + Sec(11));
  h.Leave(d, kT0 + Sec(12));
  CHECK(EndName(h.token(d).end) == "LEFT");
  CHECK_FALSE(h.HasTimer(TimerKind::kAbandon, d));
  CHECK(StatusName(h.token(e).status) == "WAITING");
  CHECK(h.queue.Position(e) == 0);
  CHECK(h.queue.active() == 2);

  // Leaving again is a no-op.
  const int64_t left_events = h.CountEvents(EventType::kQueueLeft);
  h.Leave(d, kT0 + Sec(20));
  CHECK(h.token(d).ended_at == kT0 + Sec(12));
  CHECK(h.CountEvents(EventType::kQueueLeft) == left_events);
  CHECK(left_events == 2);
  CHECK(h.AdmittedOrder() == std::vector<TokenId>{a, b, c});
  h.CheckQueueInvariants();
}

TEST_CASE("positions stay exact when tokens in the middle leave", "[admission_queue]") {
  Harness h(Settings(1));
  std::vector<TokenId> ids;
  for (UserId u = 1; u <= 12; ++u) ids.push_back(h.Join(u, kT0));
  // ids[0] is ACTIVE; ids[1..11] wait at positions 0..10.
  for (size_t i = 1; i < ids.size(); ++i) CHECK(h.queue.Position(ids[i]) == int64_t(i - 1));

  h.Leave(ids[3], kT0 + Sec(1));
  h.Leave(ids[7], kT0 + Sec(1));
  CHECK(h.queue.Position(ids[1]) == 0);
  CHECK(h.queue.Position(ids[2]) == 1);
  CHECK(h.queue.Position(ids[3]) == -1);
  CHECK(h.queue.Position(ids[4]) == 2);
  CHECK(h.queue.Position(ids[6]) == 4);
  CHECK(h.queue.Position(ids[8]) == 5);
  CHECK(h.queue.Position(ids[11]) == 8);

  // The head leaving moves everybody up; the active one leaving admits ids[1].
  h.Leave(ids[0], kT0 + Sec(2));
  CHECK(StatusName(h.token(ids[1]).status) == "ACTIVE");
  CHECK(h.queue.Position(ids[1]) == -1);
  CHECK(h.queue.Position(ids[2]) == 0);
  CHECK(h.queue.Position(ids[11]) == 7);
  for (TokenId id : ids) CHECK(h.queue.Position(id) == h.ExpectedPosition(id));
  h.CheckQueueInvariants();
}

TEST_CASE("positions are exact past the first 1024 join sequences", "[admission_queue]") {
  const int64_t n = GENERATE(1'500, 5'000);
  INFO("tokens " << n);
  Harness h(Settings(3));
  std::vector<TokenId> ids;
  for (int64_t u = 1; u <= n; ++u) ids.push_back(h.Join(u, kT0 + u));
  TimeUs now = kT0 + n + 1;
  CHECK(h.queue.Position(ids.back()) == n - 4);
  CHECK(h.queue.Position(ids[1024]) == 1024 - 3);
  if (n > 2'048) CHECK(h.queue.Position(ids[2'048]) == 2'048 - 3);

  // Drop every third waiting token, scattered over the whole range.
  for (size_t i = 5; i < ids.size(); i += 3) h.Leave(ids[i], now);
  for (size_t i = 0; i < ids.size(); i += 97) {
    INFO("token " << ids[i]);
    CHECK(h.queue.Position(ids[i]) == h.ExpectedPosition(ids[i]));
  }
  CHECK(h.queue.Position(ids.back()) == h.ExpectedPosition(ids.back()));

  // Admit a few hundred by freeing slots; admission follows join order and
  // skips the tokens that left.
  std::vector<TokenId> expected_order;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!(i >= 5 && (i - 5) % 3 == 0)) expected_order.push_back(ids[i]);
  }
  for (int k = 0; k < 400; ++k) {
    now += 1;
    // The oldest ACTIVE token leaves.
    const std::vector<TokenId> admitted = h.AdmittedOrder();
    h.Leave(admitted[static_cast<size_t>(k)], now);
  }
  const std::vector<TokenId> admitted = h.AdmittedOrder();
  REQUIRE(admitted.size() == 403);
  for (size_t i = 0; i < admitted.size(); ++i) {
    INFO("admission " << i);
    REQUIRE(admitted[i] == expected_order[i]);
  }
  for (size_t i = 0; i < ids.size(); i += 89) {
    CHECK(h.queue.Position(ids[i]) == h.ExpectedPosition(ids[i]));
  }
  CHECK(h.queue.Position(ids.back()) == h.ExpectedPosition(ids.back()));
  h.CheckQueueInvariants();
}

TEST_CASE("a WAITING token that stops polling is abandoned at exactly the timeout",
          "[admission_queue]") {
  QueueSettings s = Settings(1);
  s.abandon_timeout_us = Sec(60);
  Harness h(s);
  const TokenId a = h.Join(1, kT0);
  const TokenId b = h.Join(2, kT0 + Sec(1));
  const TokenId c = h.Join(3, kT0 + Sec(2));

  SECTION("deadline is inclusive and positions close up") {
    h.Advance(kT0 + Sec(61) - 1);
    CHECK(StatusName(h.token(b).status) == "WAITING");
    h.Advance(kT0 + Sec(61));
    CHECK(StatusName(h.token(b).status) == "EXPIRED");
    CHECK(EndName(h.token(b).end) == "ABANDONED");
    CHECK(h.token(b).ended_at == kT0 + Sec(61));
    CHECK(h.queue.abandoned_total() == 1);
    CHECK(h.CountEvents(EventType::kQueueAbandoned) == 1);
    CHECK(h.queue.Position(c) == 0);  // c is now first in line
    CHECK(h.queue.LiveToken(2) == 0);
  }
  SECTION("a poll moves the deadline") {
    h.Touch(b, kT0 + Sec(40));
    CHECK(h.token(b).last_seen_at == kT0 + Sec(40));
    h.Advance(kT0 + Sec(99));
    CHECK(StatusName(h.token(b).status) == "WAITING");
    h.Advance(kT0 + Sec(100));
    CHECK(EndName(h.token(b).end) == "ABANDONED");
    // c never polled: abandoned at its own deadline, before b's.
    CHECK(EndName(h.token(c).end) == "ABANDONED");
    CHECK(h.token(c).ended_at == kT0 + Sec(62));
  }
  SECTION("ACTIVE tokens are not abandoned, and admission cancels the abandon deadline") {
    h.Touch(b, kT0 + Sec(30));
    h.Leave(a, kT0 + Sec(40));
    REQUIRE(StatusName(h.token(b).status) == "ACTIVE");
    CHECK_FALSE(h.HasTimer(TimerKind::kAbandon, b));
    h.Advance(kT0 + Sec(500));
    CHECK(StatusName(h.token(b).status) == "ACTIVE");
  }
  h.CheckQueueInvariants();
}

TEST_CASE("an ACTIVE session expires at activated_at + session_ttl and admits the next "
          "at that time",
          "[admission_queue]") {
  QueueSettings s = Settings(1);
  s.session_ttl_us = Sec(100);
  Harness h(s);
  const TokenId a = h.Join(1, kT0);
  const TokenId b = h.Join(2, kT0 + Sec(1));
  const TokenId c = h.Join(3, kT0 + Sec(2));

  h.Advance(kT0 + Sec(100) - 1);
  CHECK(StatusName(h.token(a).status) == "ACTIVE");
  // Far past both deadlines: each admission happens at the deadline itself.
  h.Advance(kT0 + Sec(1'000));
  CHECK(EndName(h.token(a).end) == "SESSION_EXPIRED");
  CHECK(h.token(a).ended_at == kT0 + Sec(100));
  CHECK(EndName(h.token(b).end) == "SESSION_EXPIRED");
  CHECK(h.token(b).activated_at == kT0 + Sec(100));
  CHECK(h.token(b).ended_at == kT0 + Sec(200));
  CHECK(h.token(c).activated_at == kT0 + Sec(200));
  CHECK(h.token(c).ended_at == kT0 + Sec(300));
  CHECK(EndName(h.token(c).end) == "SESSION_EXPIRED");
  CHECK(h.CountEvents(EventType::kQueueSessionExpired) == 3);
  CHECK(h.queue.active() == 0);
  CHECK(h.queue.waiting() == 0);
  h.CheckQueueInvariants();
}

TEST_CASE("completing (paying) frees the slot and cancels the session deadline",
          "[admission_queue]") {
  Harness h(Settings(1));
  const TokenId a = h.Join(1, kT0);
  const TokenId b = h.Join(2, kT0);
  h.Complete(a, kT0 + Sec(30));
  CHECK(StatusName(h.token(a).status) == "EXPIRED");
  CHECK(EndName(h.token(a).end) == "COMPLETED");
  CHECK(h.token(a).ended_at == kT0 + Sec(30));
  CHECK_FALSE(h.HasTimer(TimerKind::kSessionExpiry, a));
  CHECK(StatusName(h.token(b).status) == "ACTIVE");
  CHECK(h.token(b).activated_at == kT0 + Sec(30));
  CHECK(h.CountEvents(EventType::kQueueCompleted) == 1);
  // The old session deadline does not fire later.
  h.Advance(kT0 + Sec(601));
  CHECK(EndName(h.token(a).end) == "COMPLETED");
  CHECK(h.CountEvents(EventType::kQueueSessionExpired) == 0);
  h.CheckQueueInvariants();
}

TEST_CASE("the admission rate spaces admissions by 60 s / admission_per_minute",
          "[admission_queue]") {
  QueueSettings s = Settings(10);
  s.admission_per_minute = 2;  // one admission every 30 s
  Harness h(s);
  std::vector<TokenId> ids;
  for (UserId u = 1; u <= 4; ++u) ids.push_back(h.Join(u, kT0));
  CHECK(StatusName(h.token(ids[0]).status) == "ACTIVE");
  CHECK(h.token(ids[0]).activated_at == kT0);
  for (size_t i = 1; i < 4; ++i) CHECK(StatusName(h.token(ids[i]).status) == "WAITING");
  // Exactly one tick is scheduled, for the next allowed admission.
  CHECK(h.CountTimers(TimerKind::kAdmissionTick) == 1);
  CHECK(h.HasTimer(TimerKind::kAdmissionTick, kConcert));

  h.Advance(kT0 + Sec(30) - 1);
  CHECK(StatusName(h.token(ids[1]).status) == "WAITING");
  h.Advance(kT0 + Sec(30));
  CHECK(StatusName(h.token(ids[1]).status) == "ACTIVE");
  CHECK(h.token(ids[1]).activated_at == kT0 + Sec(30));
  CHECK(StatusName(h.token(ids[2]).status) == "WAITING");

  h.Advance(kT0 + Sec(100));
  CHECK(h.token(ids[2]).activated_at == kT0 + Sec(60));
  CHECK(h.token(ids[3]).activated_at == kT0 + Sec(90));
  CHECK(h.CountTimers(TimerKind::kAdmissionTick) == 0);

  // After an idle spell the budget is available at once (burst of one).
  const TokenId late = h.Join(5, kT0 + Sec(500));
  CHECK(StatusName(h.token(late).status) == "ACTIVE");
  CHECK(h.token(late).activated_at == kT0 + Sec(500));
  const TokenId later = h.Join(6, kT0 + Sec(501));
  CHECK(StatusName(h.token(later).status) == "WAITING");
  h.Advance(kT0 + Sec(530));
  CHECK(h.token(later).activated_at == kT0 + Sec(530));
  h.CheckQueueInvariants();
}

TEST_CASE("a rate-limited queue still respects capacity", "[admission_queue]") {
  QueueSettings s = Settings(1);
  s.admission_per_minute = 60;  // every 1 s
  Harness h(s);
  const TokenId a = h.Join(1, kT0);
  const TokenId b = h.Join(2, kT0);
  h.Advance(kT0 + Sec(10));
  CHECK(StatusName(h.token(b).status) == "WAITING");  // no slot, whatever the rate says
  h.Leave(a, kT0 + Sec(10));
  CHECK(StatusName(h.token(b).status) == "ACTIVE");
  CHECK(h.token(b).activated_at == kT0 + Sec(10));
  h.CheckQueueInvariants();
}

// Joins `users` users to a queue that opens at kT0 + 100 s and returns the
// order in which the pre-queue was drawn (token ids by join sequence).
std::vector<TokenId> DrawPrequeue(uint64_t seed, int64_t users, int64_t capacity = 1) {
  QueueSettings s = Settings(capacity);
  s.opens_at = kT0 + Sec(100);
  Harness h(s, kT0, seed);
  std::vector<TokenId> ids;
  for (int64_t u = 1; u <= users; ++u) ids.push_back(h.Join(u, kT0 + u));
  h.Advance(kT0 + Sec(100));
  std::vector<TokenId> order(static_cast<size_t>(users), 0);
  for (TokenId id : ids) {
    const int64_t seq = h.token(id).join_seq;
    REQUIRE(seq >= 0);
    REQUIRE(seq < users);
    order[static_cast<size_t>(seq)] = id;
  }
  return order;
}

TEST_CASE("joins before opens_at wait in an unordered pre-queue", "[admission_queue]") {
  QueueSettings s = Settings(3);
  s.opens_at = kT0 + Sec(100);
  Harness h(s, kT0, 11);
  CHECK_FALSE(h.queue.open());
  std::vector<TokenId> ids;
  for (UserId u = 1; u <= 10; ++u) ids.push_back(h.Join(u, kT0 + Sec(u)));
  for (TokenId id : ids) {
    CHECK(StatusName(h.token(id).status) == "WAITING");
    CHECK(h.token(id).join_seq == -1);
    CHECK(h.queue.Position(id) == -1);
  }
  CHECK(h.queue.Eta(ids[0], kT0 + Sec(40)) == Sec(60));
  CHECK(h.queue.waiting() == 10);
  CHECK(h.queue.active() == 0);
  for (const Event& e : h.events.After(0, 100)) {
    if (e.type == EventType::kQueueJoined) CHECK(e.value == 1);
  }

  h.Advance(kT0 + Sec(100) - 1);
  CHECK_FALSE(h.queue.open());
  h.Advance(kT0 + Sec(100));
  CHECK(h.queue.open());
  CHECK(h.queue.active() == 3);
  CHECK(h.queue.waiting() == 7);
  int64_t opened = 0;
  for (const Event& e : h.events.After(0, 100)) {
    if (e.type == EventType::kQueueOpened) {
      ++opened;
      CHECK(e.value == 10);
      CHECK(e.at == kT0 + Sec(100));
    }
  }
  CHECK(opened == 1);
  // Every token got a distinct join sequence; positions are 0..6 among the waiting.
  std::set<int64_t> seqs;
  std::set<int64_t> positions;
  for (TokenId id : ids) {
    seqs.insert(h.token(id).join_seq);
    if (h.token(id).status == TokenStatus::kActive) {
      CHECK(h.token(id).activated_at == kT0 + Sec(100));
    } else {
      positions.insert(h.queue.Position(id));
    }
  }
  CHECK(seqs == std::set<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK(positions == std::set<int64_t>{0, 1, 2, 3, 4, 5, 6});
  // Admission follows the drawn order.
  std::vector<TokenId> by_seq(10);
  for (TokenId id : ids) by_seq[static_cast<size_t>(h.token(id).join_seq)] = id;
  CHECK(h.AdmittedOrder() == std::vector<TokenId>(by_seq.begin(), by_seq.begin() + 3));

  // A join after opening goes behind the whole drawn pre-queue.
  const TokenId late = h.Join(11, kT0 + Sec(101));
  CHECK(h.token(late).join_seq == 10);
  CHECK(h.queue.Position(late) == 7);
  h.CheckQueueInvariants();
}

TEST_CASE("a pre-queue token that stops polling is abandoned before opening",
          "[admission_queue]") {
  QueueSettings s = Settings(5);
  s.opens_at = kT0 + Sec(100);
  s.abandon_timeout_us = Sec(30);
  Harness h(s, kT0, 3);
  const TokenId quiet = h.Join(1, kT0);
  const TokenId polling = h.Join(2, kT0);
  h.Touch(polling, kT0 + Sec(25));
  h.Touch(polling, kT0 + Sec(50));
  h.Touch(polling, kT0 + Sec(75));
  h.Advance(kT0 + Sec(30));
  CHECK(EndName(h.token(quiet).end) == "ABANDONED");
  CHECK(h.token(quiet).ended_at == kT0 + Sec(30));
  CHECK(h.queue.waiting() == 1);
  h.Advance(kT0 + Sec(100));
  CHECK(StatusName(h.token(polling).status) == "ACTIVE");
  CHECK(StatusName(h.token(quiet).status) == "EXPIRED");
  CHECK(h.queue.active() == 1);
  CHECK(h.queue.admitted_total() == 1);
  h.CheckQueueInvariants();
}

TEST_CASE("opening fires before an abandon deadline at the same time", "[admission_queue]") {
  QueueSettings s = Settings(5);
  s.opens_at = kT0 + Sec(60);
  s.abandon_timeout_us = Sec(60);
  Harness h(s, kT0, 3);
  const TokenId t = h.Join(1, kT0);  // abandon deadline == opens_at
  h.Advance(kT0 + Sec(60));
  CHECK(StatusName(h.token(t).status) == "ACTIVE");
  CHECK(h.token(t).activated_at == kT0 + Sec(60));
}

TEST_CASE("the pre-queue shuffle is reproducible by seed and differs across seeds",
          "[admission_queue]") {
  const std::vector<TokenId> a = DrawPrequeue(12345, 50);
  const std::vector<TokenId> b = DrawPrequeue(12345, 50);
  const std::vector<TokenId> c = DrawPrequeue(54321, 50);
  CHECK(a == b);
  CHECK(a != c);
  std::vector<TokenId> identity;
  for (TokenId t = 1; t <= 50; ++t) identity.push_back(t);
  CHECK(a != identity);  // arriving first gives no edge
  const std::set<TokenId> drawn(a.begin(), a.end());
  CHECK(drawn == std::set<TokenId>(identity.begin(), identity.end()));
}

TEST_CASE("the pre-queue shuffle is fair: every arrival rank leads about equally often",
          "[admission_queue]") {
  constexpr int64_t kUsers = 4;
  constexpr int kTrials = 400;
  std::map<TokenId, int> first;
  for (int seed = 1; seed <= kTrials; ++seed) {
    ++first[DrawPrequeue(static_cast<uint64_t>(seed) * 0x9E3779B97F4A7C15ULL, kUsers)[0]];
  }
  for (TokenId t = 1; t <= kUsers; ++t) {
    INFO("token " << t << " was first " << first[t] << " times of " << kTrials);
    // Expected 100 each; a fair draw lands in [60, 140] with overwhelming odds.
    CHECK(first[t] >= 60);
    CHECK(first[t] <= 140);
  }
}

TEST_CASE("ETA follows the measured admission rate, then the rate cap, then capacity",
          "[admission_queue]") {
  SECTION("measured: p * 60 s / admissions in the last minute") {
    Harness h(Settings(2));
    h.Join(1, kT0);
    h.Join(2, kT0);
    const TokenId c = h.Join(3, kT0 + Sec(1));
    const TokenId d = h.Join(4, kT0 + Sec(1));
    // Two admissions in (now - 60 s, now].
    CHECK(h.queue.Eta(c, kT0 + Sec(30)) == Sec(30));   // 1 * 60 / 2
    CHECK(h.queue.Eta(d, kT0 + Sec(30)) == Sec(60));   // 2 * 60 / 2
    CHECK(h.queue.Eta(d, kT0 + Sec(60) - 1) == Sec(60));
    // At now = kT0 + 60 s the admissions at kT0 fall out of the window:
    // no measurement, no rate -> p * session_ttl / capacity.
    h.Advance(kT0 + Sec(60));
    CHECK(h.queue.Eta(c, kT0 + Sec(60)) == Sec(300));  // 1 * 600 / 2
    CHECK(h.queue.Eta(d, kT0 + Sec(60)) == Sec(600));  // 2 * 600 / 2
  }
  SECTION("measured rate uses integer microseconds, floored") {
    Harness h(Settings(7));
    for (UserId u = 1; u <= 7; ++u) h.Join(u, kT0);
    const TokenId w = h.Join(8, kT0);
    const TokenId x = h.Join(9, kT0);
    CHECK(h.queue.Eta(w, kT0) == 8'571'428);   // 1 * 60 s / 7
    CHECK(h.queue.Eta(x, kT0) == 17'142'857);  // 2 * 60 s / 7
  }
  SECTION("only the last 1024 admissions are measured") {
    Harness h(Settings(1'500));
    for (UserId u = 1; u <= 1'500; ++u) h.Join(u, kT0);
    const TokenId w = h.Join(1'501, kT0);
    REQUIRE(StatusName(h.token(w).status) == "WAITING");
    CHECK(h.queue.Eta(w, kT0) == 60'000'000 / 1'024);
  }
  SECTION("with a rate and no recent admission: p * interval") {
    QueueSettings s = Settings(1);
    s.admission_per_minute = 6;  // interval 10 s
    Harness h(s);
    h.Join(1, kT0);
    const TokenId b = h.Join(2, kT0);
    const TokenId c = h.Join(3, kT0);
    // With a recent admission the measurement wins (never below p * interval).
    CHECK(h.queue.Eta(b, kT0 + Sec(5)) == Sec(60));  // 1 admission in the window
    CHECK(h.queue.Eta(c, kT0 + Sec(5)) == Sec(120));
    h.Touch(b, kT0 + Sec(61));
    CHECK(h.queue.Eta(b, kT0 + Sec(61)) == Sec(10));
    CHECK(h.queue.Eta(c, kT0 + Sec(61)) == Sec(20));
  }
  SECTION("with a rate the ETA is at least p * interval") {
    QueueSettings s = Settings(100);
    s.admission_per_minute = 7;  // interval = 60,000,000 // 7 = 8,571,428 us
    constexpr DurationUs kInterval = 8'571'428;
    Harness h(s);
    for (UserId u = 1; u <= 8; ++u) h.Join(u, kT0);
    const TokenId w = h.Join(9, kT0);
    // Admissions at kT0 + k * interval, k = 0..7: eight within one minute
    // because 7 * interval < 60 s, so the measured 60 s / 8 = 7.5 s is below
    // the interval and the floor applies.
    h.Advance(kT0 + 7 * kInterval);
    REQUIRE(h.queue.admitted_total() == 8);
    REQUIRE(StatusName(h.token(w).status) == "WAITING");
    CHECK(h.queue.Eta(w, kT0 + 7 * kInterval) == kInterval);
  }
  SECTION("in the pre-queue: time until opening, never negative") {
    QueueSettings s = Settings(1);
    s.opens_at = kT0 + Sec(100);
    Harness h(s);
    const TokenId a = h.Join(1, kT0 + Sec(10));
    CHECK(h.queue.Eta(a, kT0 + Sec(10)) == Sec(90));
    CHECK(h.queue.Eta(a, kT0 + Sec(100) - 1) == 1);
  }
}

TEST_CASE("a random workload keeps positions exact and admission FIFO",
          "[admission_queue]") {
  const uint64_t seed = GENERATE(1u, 2u, 3u);
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  QueueSettings s = Settings(4);
  s.session_ttl_us = Sec(30);
  s.abandon_timeout_us = Sec(20);
  Harness h(s);
  TimeUs now = kT0;
  std::vector<TokenId> live;
  for (int step = 0; step < 3'000; ++step) {
    now += static_cast<TimeUs>(rng() % 2'000'000);
    const uint64_t op = rng() % 10;
    if (op < 5) {
      const TokenId id = h.Join(static_cast<UserId>(1 + rng() % 300), now);
      live.push_back(id);
    } else if (op < 8 && !live.empty()) {
      h.Touch(live[static_cast<size_t>(rng() % live.size())], now);
    } else if (op < 9 && !live.empty()) {
      h.Leave(live[static_cast<size_t>(rng() % live.size())], now);
    } else if (!live.empty()) {
      const TokenId id = live[static_cast<size_t>(rng() % live.size())];
      h.Advance(now);
      if (h.token(id).status == TokenStatus::kActive) h.queue.Complete(id, now);
    }
    h.Advance(now);
    if (step % 50 == 0) {
      for (size_t i = 1; i < h.tokens.size(); ++i) {
        const TokenId id = static_cast<TokenId>(i);
        REQUIRE(h.queue.Position(id) == h.ExpectedPosition(id));
      }
      h.CheckQueueInvariants();
    }
    // Nobody waits while a slot is free.
    if (h.queue.active() < s.queue_capacity) REQUIRE(h.queue.waiting() == 0);
  }
  // Admission order is join order.
  int64_t last_seq = -1;
  for (TokenId id : h.AdmittedOrder()) {
    CHECK(h.token(id).join_seq > last_seq);
    last_seq = h.token(id).join_seq;
  }
}

// --- the queue digest (queue_digest.h) --------------------------------------------------------

// Decodes the queue's digest as of `now` and requires it to answer every token as the queue
// does: a WAITING token's position and ETA, -1 for every other.
QueueDigest CheckDigest(Harness& h, TimeUs now) {
  h.Advance(now);
  std::string bytes;
  REQUIRE(h.queue.EncodeDigest(now, &bytes).ok());
  absl::StatusOr<QueueDigest> d = QueueDigest::Decode(bytes);
  INFO(d.status().ToString());
  REQUIRE(d.ok());
  CHECK(d->concert_id() == kConcert);
  CHECK(d->as_of() == now);
  CHECK(d->open() == h.queue.open());
  CHECK(d->waiting() == h.queue.waiting());
  CHECK(d->active() == h.queue.active());
  CHECK(d->poll_interval_us() == h.queue.settings().poll_interval_us);
  CHECK(d->abandon_timeout_us() == h.queue.settings().abandon_timeout_us);
  CHECK(d->encoded_bytes() == bytes.size());
  for (size_t i = 1; i < h.tokens.size(); ++i) {
    const auto id = static_cast<TokenId>(i);
    const TokenFacts t = h.token(id);
    INFO("token " << id << " join_seq " << t.join_seq);
    const int64_t position = h.queue.Position(id);
    REQUIRE(d->Position(t.join_seq) == position);
    if (position >= 0) REQUIRE(d->Eta(position) == h.queue.Eta(id, now));
  }
  CHECK(d->Position(d->joined()) == -1);  // joined after the digest: unknown
  return *d;
}

TEST_CASE("a queue digest answers every token's position and ETA as the queue does",
          "[admission_queue][queue_digest]") {
  const uint64_t seed = GENERATE(11u, 12u);
  const bool rate_capped = GENERATE(false, true);
  INFO("seed " << seed << " rate cap " << rate_capped);
  std::mt19937_64 rng(seed);
  QueueSettings s = Settings(5);
  s.session_ttl_us = Sec(40);
  s.abandon_timeout_us = Sec(25);
  if (rate_capped) s.admission_per_minute = 30;
  Harness h(s);
  TimeUs now = kT0;
  std::vector<TokenId> live;
  // Over 1,500 users: several Fenwick blocks (512 join sequences each) and every kind of run.
  for (int step = 0; step < 6'000; ++step) {
    now += static_cast<TimeUs>(rng() % 700'000);
    const uint64_t op = rng() % 10;
    if (op < 6) {
      live.push_back(h.Join(static_cast<UserId>(1 + rng() % 1'500), now));
    } else if (op < 8 && !live.empty()) {
      h.Touch(live[static_cast<size_t>(rng() % live.size())], now);
    } else if (op < 9 && !live.empty()) {
      h.Leave(live[static_cast<size_t>(rng() % live.size())], now);
    } else if (!live.empty()) {
      const TokenId id = live[static_cast<size_t>(rng() % live.size())];
      h.Advance(now);
      if (h.token(id).status == TokenStatus::kActive) h.queue.Complete(id, now);
    }
    if (step % 500 == 0) CheckDigest(h, now);
  }
  const QueueDigest last = CheckDigest(h, now);
  CHECK(last.joined() > 1'000);
}

TEST_CASE("a digest of a long WAITING line is a few bytes, whatever its length",
          "[admission_queue][queue_digest]") {
  Harness h(Settings(10));
  TimeUs now = kT0;
  for (UserId u = 1; u <= 20'000; ++u) h.Join(u, now += 1'000);
  // A few leave in the middle: literal words for their ragged edges, runs elsewhere.
  for (TokenId id : {500, 501, 9'999, 15'000}) h.Leave(id, now);
  const QueueDigest d = CheckDigest(h, now);
  CHECK(d.waiting() == 20'000 - 10 - 4);
  CHECK(d.encoded_bytes() < 128);
}

TEST_CASE("a pre-queue digest knows its WAITING count but no positions until opening",
          "[admission_queue][queue_digest]") {
  QueueSettings s = Settings(2);
  s.opens_at = kT0 + Sec(60);
  Harness h(s);
  for (UserId u = 1; u <= 8; ++u) h.Join(u, kT0 + Sec(u));
  const QueueDigest before = CheckDigest(h, kT0 + Sec(10));
  CHECK_FALSE(before.open());
  CHECK(before.waiting() == 8);
  CHECK(before.joined() == 0);
  CHECK(before.Position(-1) == -1);
  const QueueDigest after = CheckDigest(h, kT0 + Sec(61));
  CHECK(after.open());
  CHECK(after.waiting() == 6);
  CHECK(after.joined() == 8);
}

// A digest's header, as EncodeDigest writes it, for `waiting` WAITING tokens among `joined`
// join sequences whose bitmap starts at word `first_word`; the runs follow.
SnapshotWriter DigestHeader(int64_t waiting, int64_t joined, int64_t first_word) {
  SnapshotWriter w;
  w.U8(QueueDigest::kVersion);
  w.Int(kConcert);
  w.Int(kT0);  // as_of
  w.Bool(true);  // open
  // poll interval, capacity, rate cap, session TTL, abandon timeout, admissions in the
  // window, WAITING, pre-queue WAITING, ACTIVE, join sequences, the bitmap's first word
  for (int64_t v : {Sec(5), int64_t{10}, kNoLimit, Sec(600), Sec(60), int64_t{0}, waiting,
                    int64_t{0}, int64_t{0}, joined, first_word}) {
    w.Int(v);
  }
  return w;
}

TEST_CASE("a few bytes of digest can never make the reader allocate much", "[queue_digest]") {
  // Well formed, small: one run of ones covering 640 WAITING tokens.
  SnapshotWriter ok = DigestHeader(640, 640, 0);
  ok.Var(10 << 2 | 1);
  REQUIRE(QueueDigest::Decode(ok.bytes()).ok());
  // 2^32 join sequences from word 0: more words than any digest carries.
  SnapshotWriter wide = DigestHeader(0, kCompactIdMax + 1, 0);
  wide.Var(static_cast<uint64_t>((kCompactIdMax + 1) / 64) << 2 | 0);
  absl::StatusOr<QueueDigest> d = QueueDigest::Decode(wide.bytes());
  REQUIRE_FALSE(d.ok());
  CHECK(d.status().code() == absl::StatusCode::kDataLoss);
  // A run of ones longer than the WAITING count: refused as it is read.
  SnapshotWriter ones = DigestHeader(64, kQueueDigestWordsMax * 64, 0);
  ones.Var(static_cast<uint64_t>(kQueueDigestWordsMax) << 2 | 1);
  d = QueueDigest::Decode(ones.bytes());
  REQUIRE_FALSE(d.ok());
  CHECK(absl::StrContains(d.status().message(), "more WAITING tokens"));
}

TEST_CASE("a damaged queue digest is DATA_LOSS, never a crash or a wrong answer",
          "[admission_queue][queue_digest]") {
  Harness h(Settings(3));
  TimeUs now = kT0;
  for (UserId u = 1; u <= 700; ++u) h.Join(u, now += 1'000);
  for (TokenId id = 10; id < 700; id += 7) h.Leave(id, now);
  std::string bytes;
  REQUIRE(h.queue.EncodeDigest(now, &bytes).ok());
  REQUIRE(QueueDigest::Decode(bytes).ok());
  for (size_t n = 0; n < bytes.size(); ++n) {  // every truncation
    absl::StatusOr<QueueDigest> d = QueueDigest::Decode(absl::string_view(bytes).substr(0, n));
    INFO("first " << n << " bytes");
    REQUIRE_FALSE(d.ok());
    CHECK(d.status().code() == absl::StatusCode::kDataLoss);
    CHECK(absl::StartsWith(d.status().message(), "damaged queue digest: "));
  }
  CHECK_FALSE(QueueDigest::Decode(bytes + "x").ok());
  std::string other_version = bytes;
  other_version[0] = 2;
  CHECK_FALSE(QueueDigest::Decode(other_version).ok());
  // Every single flipped bit: refused, or decoded into a digest whose answers stay in range.
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (int b = 0; b < 8; ++b) {
      std::string flipped = bytes;
      flipped[i] = static_cast<char>(flipped[i] ^ (1 << b));
      absl::StatusOr<QueueDigest> d = QueueDigest::Decode(flipped);
      if (!d.ok()) continue;
      for (int64_t seq = -1; seq <= d->joined(); ++seq) {
        const int64_t p = d->Position(seq);
        REQUIRE(p >= -1);
        REQUIRE(p < d->waiting() + 1);
        if (p >= 0) REQUIRE(d->Eta(p) >= 0);
      }
    }
  }
}

}  // namespace
}  // namespace boxoffice
