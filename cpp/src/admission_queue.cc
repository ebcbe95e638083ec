// AdmissionQueue: see admission_queue.h for what it models and why.
#include "boxoffice/admission_queue.h"

#include <algorithm>
#include <bit>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "boxoffice/assert.h"
#include "boxoffice/errors.h"
#include "boxoffice/limits.h"
#include "boxoffice/snapshot_io.h"

namespace boxoffice {
namespace {

constexpr DurationUs kEtaWindowUs = 60 * kMicrosPerSecond;
// ETAs are capped at ten years: beyond that a number means nothing to a user.
constexpr DurationUs kEtaMaxUs = 10LL * 365 * 24 * 3600 * kMicrosPerSecond;

// SplitMix64 (Steele, Lea, Flood 2014): small, fast, and the same everywhere,
// so a seed draws the same pre-queue order on every machine.
uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

void RankBitmap::TreeAdd(size_t block, int32_t delta) {
  for (size_t k = block + 1; k <= tree_.size(); k += k & (~k + 1)) tree_[k - 1] += delta;
}

void RankBitmap::Set(int64_t i) {
  BOXOFFICE_ASSERT(i >= 0 && static_cast<size_t>(i) < words_.size() * 64);
  const auto u = static_cast<size_t>(i);
  const uint64_t bit = uint64_t{1} << (u % 64);
  BOXOFFICE_ASSERT((words_[u / 64] & bit) == 0);
  words_[u / 64] |= bit;
  TreeAdd(u / 64 / kBlockWords, 1);
}

void RankBitmap::Clear(int64_t i) {
  BOXOFFICE_ASSERT(i >= 0 && static_cast<size_t>(i) < words_.size() * 64);
  const auto u = static_cast<size_t>(i);
  const uint64_t bit = uint64_t{1} << (u % 64);
  BOXOFFICE_ASSERT((words_[u / 64] & bit) != 0);
  words_[u / 64] &= ~bit;
  TreeAdd(u / 64 / kBlockWords, -1);
}

int64_t RankBitmap::Prefix(int64_t end) const {
  const size_t e = std::min(static_cast<size_t>(std::max<int64_t>(end, 0)), words_.size() * 64);
  const size_t word = e / 64;
  const size_t block = word / kBlockWords;
  int64_t sum = 0;
  for (size_t k = block; k > 0; k -= k & (~k + 1)) sum += tree_[k - 1];
  for (size_t w = block * kBlockWords; w < word; ++w) sum += std::popcount(words_[w]);
  if (e % 64 != 0) sum += std::popcount(words_[word] & ((uint64_t{1} << (e % 64)) - 1));
  return sum;
}

void RankBitmap::AssignWords(std::vector<uint64_t> words) {
  words.resize((words.size() + kBlockWords - 1) / kBlockWords * kBlockWords, 0);
  words_ = std::move(words);
  tree_.assign(words_.size() / kBlockWords, 0);
  // Each block's count, then each count added into its Fenwick parent: O(n).
  for (size_t w = 0; w < words_.size(); ++w) {
    tree_[w / kBlockWords] += static_cast<int32_t>(std::popcount(words_[w]));
  }
  for (size_t k = 1; k <= tree_.size(); ++k) {
    const size_t parent = k + (k & (~k + 1));
    if (parent <= tree_.size()) tree_[parent - 1] += tree_[k - 1];
  }
}

void RankBitmap::Reserve(int64_t i) {
  const auto need = static_cast<size_t>(i) / 64 + 1;
  if (need <= words_.size()) return;
  size_t n = words_.empty() ? 16 : words_.size();
  while (n < need) n *= 2;
  words_.resize(n, 0);
  tree_.assign(n / kBlockWords, 0);
  for (size_t w = 0; w < n; ++w) {
    if (words_[w] != 0) TreeAdd(w / kBlockWords, std::popcount(words_[w]));
  }
}

void LiveTokens::Remove(UserId user, TokenId token) {
  auto& list = by_user_[static_cast<size_t>(user)];
  for (size_t i = 0; i < list.size(); ++i) {
    if (list[i] == token) {
      list[i] = list.back();
      list.pop_back();
      return;
    }
  }
  BOXOFFICE_ASSERT(false && "removing a token that is not live");
}

AdmissionQueue::AdmissionQueue(ConcertId concert_id, const QueueSettings& settings,
                               TimeUs created_at, std::vector<TokenRecord>* tokens,
                               HoldTimer* timer, EventLog* events, LiveTokens* live)
    : concert_id_(concert_id),
      settings_(settings),
      tokens_(tokens),
      timer_(timer),
      events_(events),
      live_(live) {
  BOXOFFICE_ASSERT(settings_.queue_capacity > 0);
  BOXOFFICE_ASSERT(settings_.session_ttl_us > 0 && settings_.abandon_timeout_us > 0);
  if (settings_.opens_at == kNever || settings_.opens_at <= created_at) {
    open_ = true;
  } else {
    timer_->Schedule(settings_.opens_at, TimerKind::kQueueOpen, concert_id_);
  }
}

absl::StatusOr<TokenId> AdmissionQueue::Join(UserId user, TimeUs now,
                                             int64_t queue_length_max) {
  if (TokenId live = LiveToken(user); live != 0) {
    Touch(live, now);
    return live;
  }
  if (waiting() + active_ >= queue_length_max) {
    return MakeError(ErrorCode::kQueueFull,
                     absl::StrCat("the queue of concert ", concert_id_, " is full (",
                                  queue_length_max, " live tokens)"),
                     {.retry_after_us = settings_.poll_interval_us});
  }
  // Token ids, and so join sequences, are stored in 32 bits (TokenRecord).
  const auto id = static_cast<TokenId>(tokens_->size());
  if (id > kCompactIdMax) {
    return MakeError(ErrorCode::kLimitExceeded,
                     absl::StrCat("the engine has issued ", kCompactIdMax, " queue tokens"));
  }
  BOXOFFICE_ASSERT(user >= 1 && user <= kCompactIdMax);
  TokenRecord fresh;
  fresh.user_id = static_cast<uint32_t>(user);
  fresh.concert_id = static_cast<uint32_t>(concert_id_);
  fresh.joined_at = now;
  fresh.last_seen_at = now;
  tokens_->push_back(fresh);
  live_->Add(user, id);
  ++joined_total_;
  LinkWaiting(id);
  ScheduleAbandon();
  if (!open_) {
    prequeue_.push_back(static_cast<uint32_t>(id));
    ++prequeue_waiting_;
    Emit(EventType::kQueueJoined, id, now, 1);
  } else {
    Enqueue(id);
    Emit(EventType::kQueueJoined, id, now, 0);
    AdmitWhilePossible(now);
  }
  return id;
}

void AdmissionQueue::Enqueue(TokenId id) {
  // At most one join sequence per token: below kCompactIdMax too.
  const auto seq = static_cast<int64_t>(order_.size());
  waiting_at_.Reserve(seq);
  order_.push_back(static_cast<uint32_t>(id));
  token(id).join_seq = static_cast<uint32_t>(seq);
  waiting_at_.Set(seq);
  ++waiting_;
}

void AdmissionQueue::Touch(TokenId id, TimeUs now) {
  TokenRecord& t = token(id);
  t.last_seen_at = now;
  // The latest poll goes to the back of the abandon line (the clock never goes
  // back, so the line stays ordered); the timer entry is left where it is.
  if (t.status == TokenStatus::kWaiting && wait_back_ != id) {
    UnlinkWaiting(id);
    LinkWaiting(id);
  }
}

void AdmissionQueue::LinkWaiting(TokenId id) {
  TokenRecord& t = token(id);
  t.slot.wait = {static_cast<uint32_t>(wait_back_), 0};
  if (wait_back_ != 0) {
    token(wait_back_).slot.wait.next = static_cast<uint32_t>(id);
  } else {
    wait_front_ = id;
  }
  wait_back_ = id;
}

void AdmissionQueue::UnlinkWaiting(TokenId id) {
  TokenRecord::Slot::Links& links = token(id).slot.wait;
  if (links.prev != 0) {
    token(links.prev).slot.wait.next = links.next;
  } else {
    BOXOFFICE_ASSERT(wait_front_ == id);
    wait_front_ = links.next;
  }
  if (links.next != 0) {
    token(links.next).slot.wait.prev = links.prev;
  } else {
    BOXOFFICE_ASSERT(wait_back_ == id);
    wait_back_ = links.prev;
  }
  links = {0, 0};
}

void AdmissionQueue::ScheduleAbandon() {
  if (abandon_at_ != 0 || wait_front_ == 0) return;
  abandon_at_ = AbandonDeadline(token(wait_front_));
  timer_->Schedule(abandon_at_, TimerKind::kAbandon, concert_id_);
}

TimeUs AdmissionQueue::RebuildAbandonLine() {
  std::vector<TokenId> waiting;
  for (TokenId id : order_) {
    if (token(id).status == TokenStatus::kWaiting) waiting.push_back(id);
  }
  for (TokenId id : prequeue_) {
    if (token(id).status == TokenStatus::kWaiting) waiting.push_back(id);
  }
  std::sort(waiting.begin(), waiting.end(), [this](TokenId a, TokenId b) {
    return std::pair(token(a).last_seen_at, a) < std::pair(token(b).last_seen_at, b);
  });
  wait_front_ = wait_back_ = 0;
  abandon_at_ = 0;
  for (TokenId id : waiting) LinkWaiting(id);
  ScheduleAbandon();
  return wait_front_ == 0 ? kNever : abandon_at_;
}

void AdmissionQueue::End(TokenId id, TokenEnd why, TimeUs at, EventType event) {
  // A session's timer entry is left to go stale (see hold_timer.h).
  TokenRecord& t = token(id);
  if (t.status == TokenStatus::kWaiting) {
    UnlinkWaiting(id);
    if (t.join_seq != TokenRecord::kNoJoinSeq) {
      waiting_at_.Clear(t.join_seq);
      --waiting_;
    } else {
      --prequeue_waiting_;  // stays in prequeue_, skipped at opening
    }
    t.slot.ended_at = at;
  } else if (t.status == TokenStatus::kActive) {
    --active_;
    sessions_[t.slot.session].ended_at = at;
  } else {
    BOXOFFICE_ASSERT(false && "ending an EXPIRED token");
  }
  t.status = TokenStatus::kExpired;
  t.end = why;
  live_->Remove(t.user_id, id);
  Emit(event, id, at, 0);
}

void AdmissionQueue::Leave(TokenId id, TimeUs now) {
  if (token(id).status == TokenStatus::kExpired) return;
  End(id, TokenEnd::kLeft, now, EventType::kQueueLeft);
  AdmitWhilePossible(now);
}

void AdmissionQueue::Complete(TokenId id, TimeUs now) {
  BOXOFFICE_ASSERT(token(id).status == TokenStatus::kActive);
  End(id, TokenEnd::kCompleted, now, EventType::kQueueCompleted);
  AdmitWhilePossible(now);
}

void AdmissionQueue::OnOpen(TimeUs at, uint64_t seed) {
  BOXOFFICE_ASSERT(!open_);
  open_ = true;
  std::vector<TokenId> drawn;
  drawn.reserve(static_cast<size_t>(prequeue_waiting_));
  for (TokenId id : prequeue_) {
    if (token(id).status == TokenStatus::kWaiting) drawn.push_back(id);
  }
  BOXOFFICE_ASSERT(static_cast<int64_t>(drawn.size()) == prequeue_waiting_);
  // Fisher-Yates: every order of the pre-queue is equally likely.
  uint64_t state = seed ^ static_cast<uint64_t>(concert_id_);
  for (size_t i = drawn.size(); i > 1; --i) {
    const size_t j = static_cast<size_t>(SplitMix64(state) % i);
    std::swap(drawn[i - 1], drawn[j]);
  }
  for (TokenId id : drawn) Enqueue(id);
  prequeue_.clear();
  prequeue_.shrink_to_fit();
  prequeue_waiting_ = 0;
  Event e;
  e.at = at;
  e.type = EventType::kQueueOpened;
  e.concert_id = concert_id_;
  e.value = static_cast<int64_t>(drawn.size());
  events_->Append(e);
  AdmitWhilePossible(at);
}

void AdmissionQueue::OnSessionExpiry(TokenId id, TimeUs at) {
  const TokenRecord& t = token(id);
  if (t.status != TokenStatus::kActive) return;  // left or completed since: stale
  BOXOFFICE_ASSERT(SessionEnd(sessions_[t.slot.session]) == at);
  End(id, TokenEnd::kSessionExpired, at, EventType::kQueueSessionExpired);
  AdmitWhilePossible(at);
}

void AdmissionQueue::OnAbandonDue(TimeUs at) {
  BOXOFFICE_ASSERT(abandon_at_ == at);
  abandon_at_ = 0;
  std::vector<TokenId> due;
  for (TokenId id = wait_front_; id != 0; id = token(id).slot.wait.next) {
    const TimeUs deadline = AbandonDeadline(token(id));
    BOXOFFICE_ASSERT(deadline >= at);
    if (deadline != at) break;
    due.push_back(id);
  }
  std::sort(due.begin(), due.end());
  for (TokenId id : due) {
    End(id, TokenEnd::kAbandoned, at, EventType::kQueueAbandoned);
    ++abandoned_total_;
  }
  ScheduleAbandon();
}

void AdmissionQueue::OnAdmissionTick(TimeUs at) {
  if (tick_at_ == at) tick_at_ = 0;
  AdmitWhilePossible(at);
}

void AdmissionQueue::AdmitWhilePossible(TimeUs at) {
  if (!open_) return;
  const int64_t per_minute = settings_.admission_per_minute;
  while (active_ < settings_.queue_capacity && waiting_ > 0) {
    if (per_minute > 0 && at < next_admit_at_) {
      if (tick_at_ != next_admit_at_) {
        timer_->Schedule(next_admit_at_, TimerKind::kAdmissionTick, concert_id_);
        tick_at_ = next_admit_at_;
      }
      return;
    }
    while (token(order_[static_cast<size_t>(head_)]).status != TokenStatus::kWaiting) ++head_;
    const TokenId id = order_[static_cast<size_t>(head_)];
    TokenRecord& t = token(id);
    UnlinkWaiting(id);
    waiting_at_.Clear(t.join_seq);
    --waiting_;
    ++active_;
    t.status = TokenStatus::kActive;
    t.admitted = true;
    t.slot.session = static_cast<uint32_t>(sessions_.size());  // one per token at most
    sessions_.push_back({.activated_at = at, .ended_at = kNever});
    timer_->Schedule(SessionEnd(sessions_.back()), TimerKind::kSessionExpiry, id);
    ++admitted_total_;
    recent_admissions_.push_back(at);
    if (recent_admissions_.size() > kRecentAdmissionsMax) recent_admissions_.pop_front();
    eta_now_ = -1;
    if (per_minute > 0) {
      next_admit_at_ = std::max(next_admit_at_, at) + 60 * kMicrosPerSecond / per_minute;
    }
    Emit(EventType::kQueueAdmitted, id, at, 0);
  }
  BOXOFFICE_ASSERT(active_ <= settings_.queue_capacity);
}

int64_t AdmissionQueue::Position(TokenId id) const {
  const TokenRecord& t = token(id);
  if (t.status != TokenStatus::kWaiting || t.join_seq == TokenRecord::kNoJoinSeq) return -1;
  return waiting_at_.Prefix(t.join_seq);
}

DurationUs EstimateWait(int64_t position, int64_t admitted_in_window, const QueueSettings& s) {
  const int64_t p = position + 1;
  const int64_t n = admitted_in_window;
  const int64_t per_minute = s.admission_per_minute;
  const DurationUs interval = per_minute > 0 ? 60 * kMicrosPerSecond / per_minute : 0;
  DurationUs eta;
  if (n > 0) {
    eta = p * kEtaWindowUs / n;
  } else if (per_minute > 0) {
    eta = p * interval;
  } else {
    // Millions waiting times a long session TTL overflows 64 bits: use 128.
    __extension__ using Int128 = __int128;
    eta = static_cast<DurationUs>(std::min<Int128>(
        static_cast<Int128>(p) * s.session_ttl_us / s.queue_capacity, kEtaMaxUs));
  }
  if (per_minute > 0) eta = std::max(eta, p * interval);
  return std::min(eta, kEtaMaxUs);
}

int64_t AdmissionQueue::AdmittedInWindow(TimeUs now) const {
  // Admission times are ascending: count those in (now - window, now]. Every
  // admission runs at the clock, so for a given `now` the count only changes
  // when an admission happens at `now` (which resets the cache).
  if (now != eta_now_) {
    eta_now_ = now;
    eta_admitted_ = static_cast<int64_t>(
        recent_admissions_.end() - std::upper_bound(recent_admissions_.begin(),
                                                    recent_admissions_.end(),
                                                    now - kEtaWindowUs));
  }
  return eta_admitted_;
}

DurationUs AdmissionQueue::Eta(TokenId id, TimeUs now) const {
  const TokenRecord& t = token(id);
  if (t.status != TokenStatus::kWaiting) return 0;
  if (t.join_seq == TokenRecord::kNoJoinSeq) {
    return std::max<DurationUs>(0, settings_.opens_at - now);
  }
  return EstimateWait(Position(id), AdmittedInWindow(now), settings_);
}

void AdmissionQueue::Emit(EventType type, TokenId id, TimeUs at, int64_t value) {
  Event e;
  e.at = at;
  e.type = type;
  e.user_id = token(id).user_id;
  e.concert_id = concert_id_;
  e.token_id = id;
  e.value = value;
  events_->Append(e);
}

std::string AdmissionQueue::CheckInvariants() const {
  if (active_ > settings_.queue_capacity) {
    return absl::StrCat("queue ", concert_id_, ": ", active_, " ACTIVE > capacity ",
                        settings_.queue_capacity);
  }
  int64_t waiting = 0;
  int64_t active = 0;
  for (size_t seq = 0; seq < order_.size(); ++seq) {
    const TokenRecord& t = token(order_[seq]);
    if (t.JoinSeq() != static_cast<int64_t>(seq)) {
      return absl::StrCat("queue ", concert_id_, ": token ", order_[seq],
                          " has a wrong join sequence");
    }
    if (t.status == TokenStatus::kWaiting) {
      ++waiting;
      if (static_cast<int64_t>(seq) < head_) {
        return absl::StrCat("queue ", concert_id_, ": WAITING token behind the head");
      }
    }
    if (t.status == TokenStatus::kActive) ++active;
    if (static_cast<int64_t>(seq) > head_ && t.admitted) {
      return absl::StrCat("queue ", concert_id_, ": token ", order_[seq],
                          " was admitted out of join order");
    }
    if (t.admitted && (t.slot.session >= sessions_.size() ||
                       (sessions_[t.slot.session].ended_at == kNever) !=
                           (t.status == TokenStatus::kActive))) {
      return absl::StrCat("queue ", concert_id_, ": token ", order_[seq],
                          " has a wrong session");
    }
  }
  if (waiting != waiting_ || waiting_at_.Prefix(static_cast<int64_t>(order_.size())) != waiting_) {
    return absl::StrCat("queue ", concert_id_, ": WAITING count drifted");
  }
  if (active != active_) return absl::StrCat("queue ", concert_id_, ": ACTIVE count drifted");
  // The abandon line: every WAITING token once, by last_seen_at, linked both ways.
  int64_t linked = 0;
  TokenId prev = 0;
  for (TokenId id = wait_front_; id != 0; id = token(id).slot.wait.next) {
    const TokenRecord& t = token(id);
    if (t.status != TokenStatus::kWaiting || static_cast<ConcertId>(t.concert_id) != concert_id_ ||
        t.slot.wait.prev != prev ||
        (prev != 0 && token(prev).last_seen_at > t.last_seen_at) || ++linked > this->waiting()) {
      return absl::StrCat("queue ", concert_id_, ": the abandon line is broken at token ", id);
    }
    prev = id;
  }
  if (prev != wait_back_ || linked != this->waiting()) {
    return absl::StrCat("queue ", concert_id_, ": the abandon line has ", linked, " of ",
                        this->waiting(), " WAITING tokens");
  }
  if (wait_front_ != 0 &&
      (abandon_at_ == 0 || abandon_at_ > AbandonDeadline(token(wait_front_)))) {
    return absl::StrCat("queue ", concert_id_, ": no abandon deadline is scheduled in time");
  }
  return "";
}

// --- snapshot ------------------------------------------------------------------------

#if defined(__GLIBCXX__) && defined(__x86_64__)
// Tripwire for the members Encode stores (layout of libstdc++ on x86-64): a new
// member must be stored, or rebuilt, or be a cache; then update the size. (408:
// wait_front_, wait_back_, abandon_at_ are rebuilt by RebuildAbandonLine,
// sessions_ from the tokens' times, order_, prequeue_ and waiting_at_ by the
// Restore calls; eta_now_, eta_admitted_ are a cache.)
static_assert(sizeof(AdmissionQueue) == 408, "new AdmissionQueue member: add it to the snapshot");
#endif

void AdmissionQueue::Encode(SnapshotWriter& w) const {
  w.Bool(open_);
  w.Int(head_);
  w.Int(waiting_);
  w.Int(active_);
  w.Int(prequeue_waiting_);
  w.Time(next_admit_at_, 0);
  w.Time(tick_at_, 0);
  w.Int(admitted_total_);
  w.Int(joined_total_);
  w.Int(abandoned_total_);
  w.Count(recent_admissions_.size());
  TimeUs prev = 0;
  for (TimeUs t : recent_admissions_) {
    w.Time(t, prev);
    prev = t;
  }
}

void AdmissionQueue::Decode(SnapshotReader& r, TimeUs clock) {
  open_ = r.Bool("queue open");
  head_ = r.Int("queue head", 0, kSnapshotTimeLimit);
  waiting_ = r.Int("queue waiting", 0, kSnapshotTimeLimit);
  active_ = r.Int("queue active", 0, settings_.queue_capacity);
  prequeue_waiting_ = r.Int("pre-queue waiting", 0, kSnapshotTimeLimit);
  next_admit_at_ = r.Time("next_admit_at", 0);
  tick_at_ = r.Time("tick_at", 0);
  admitted_total_ = r.Int("admitted_total", 0, kSnapshotTimeLimit);
  joined_total_ = r.Int("joined_total", 0, kSnapshotTimeLimit);
  abandoned_total_ = r.Int("abandoned_total", 0, kSnapshotTimeLimit);
  const size_t n = r.Count("recent admissions", 1);
  r.Check(n <= kRecentAdmissionsMax, "too many recent admissions");
  TimeUs prev = 0;
  for (size_t i = 0; i < n && r.ok(); ++i) {
    const TimeUs t = r.Past("recent admission", prev, clock);
    r.Check(t >= prev, "recent admissions are not in order");
    recent_admissions_.push_back(t);
    prev = t;
  }
}

void AdmissionQueue::EncodeToken(SnapshotWriter& w, const TokenRecord& t,
                                 TimeUs prev_joined) const {
  const TokenTimes times = Times(t);
  w.U8(static_cast<uint8_t>(t.status));
  w.U8(static_cast<uint8_t>(t.end));
  w.Int(t.JoinSeq());
  w.Time(t.joined_at, prev_joined);
  w.Time(t.last_seen_at, t.joined_at);
  if (t.status != TokenStatus::kWaiting) w.Time(times.activated_at, t.joined_at);
  if (t.status == TokenStatus::kExpired) w.Time(times.ended_at, t.joined_at);
}

bool AdmissionQueue::DecodeToken(SnapshotReader& r, TokenRecord& t, TokenId id, int64_t tokens,
                                 TimeUs prev_joined, TimeUs clock) {
  const bool v1 = r.version() == 1;  // every token has five times, expires_at included
  t.status = r.Enum<TokenStatus>("token status", 3);
  t.end = r.Enum<TokenEnd>("token end", 5);
  const int64_t join_seq = r.Int("join sequence", -1, tokens - 1);
  t.joined_at = r.Past("joined_at", prev_joined, clock);
  t.last_seen_at = r.Past("last_seen_at", t.joined_at, clock);
  TokenTimes times;
  if (v1 || t.status != TokenStatus::kWaiting) {
    times.activated_at = r.Past("activated_at", t.joined_at, clock, true);
  }
  if (v1) times.expires_at = r.Time("token expires_at", t.joined_at, true);
  if (v1 || t.status == TokenStatus::kExpired) {
    times.ended_at = r.Past("token ended_at", t.joined_at, clock, true);
  }
  if (!r.ok()) return false;
  bool consistent = false;
  switch (t.status) {
    case TokenStatus::kWaiting:
      consistent = t.end == TokenEnd::kNone && times.activated_at == kNever &&
                   times.ended_at == kNever;
      break;
    case TokenStatus::kActive:
      // A session ends session_ttl after it began: version 1's stored end must agree.
      consistent = t.end == TokenEnd::kNone && join_seq >= 0 && times.activated_at != kNever &&
                   times.ended_at == kNever &&
                   (!v1 || times.expires_at == times.activated_at + settings_.session_ttl_us);
      break;
    case TokenStatus::kExpired:
      consistent = t.end != TokenEnd::kNone && times.ended_at != kNever;
      break;
  }
  if (t.status != TokenStatus::kActive) consistent = consistent && times.expires_at == kNever;
  if (!r.Check(consistent, absl::StrCat("token ", id, " is inconsistent with its state"))) {
    return false;
  }
  t.join_seq = join_seq < 0 ? TokenRecord::kNoJoinSeq : static_cast<uint32_t>(join_seq);
  if (times.activated_at != kNever) {
    t.admitted = true;
    t.slot.session = static_cast<uint32_t>(sessions_.size());
    sessions_.push_back({.activated_at = times.activated_at, .ended_at = times.ended_at});
  } else if (t.status == TokenStatus::kExpired) {
    t.slot.ended_at = times.ended_at;
  }
  return true;
}

void AdmissionQueue::RestoreOrder(size_t sequenced) { order_.assign(sequenced, 0); }

bool AdmissionQueue::RestoreToken(SnapshotReader& r, TokenId id) {
  const TokenRecord& t = token(id);
  if (t.join_seq != TokenRecord::kNoJoinSeq) {
    // Join sequences must be exactly 0..sequenced-1.
    const size_t seq = t.join_seq;
    if (!r.Check(open_ && seq < order_.size() && order_[seq] == 0,
                 absl::StrCat("token ", id, " has an impossible join sequence"))) {
      return false;
    }
    order_[seq] = static_cast<uint32_t>(id);
  } else if (open_) {
    // Tokens that ended in the pre-queue never got a sequence.
    if (!r.Check(t.status == TokenStatus::kExpired,
                 absl::StrCat("token ", id, " waits outside the order of an open queue"))) {
      return false;
    }
  } else {
    prequeue_.push_back(static_cast<uint32_t>(id));  // before opening: every token, in join order
  }
  if (t.status != TokenStatus::kExpired) {
    if (!r.Check(LiveToken(t.user_id) == 0,
                 absl::StrCat("user ", t.user_id, " has two live tokens for concert ",
                              concert_id_))) {
      return false;
    }
    live_->Add(t.user_id, id);
  }
  return true;
}

bool AdmissionQueue::RestoreEnd(SnapshotReader& r) {
  // Every ACTIVE token has a join sequence (DecodeToken), so all are in order_.
  int64_t waiting = 0;
  int64_t active = 0;
  int64_t prequeue_waiting = 0;
  for (uint32_t id : order_) {
    if (token(id).status == TokenStatus::kWaiting) ++waiting;
    if (token(id).status == TokenStatus::kActive) ++active;
  }
  for (uint32_t id : prequeue_) {
    if (token(id).status == TokenStatus::kWaiting) ++prequeue_waiting;
  }
  if (!r.Check(waiting == waiting_ && active == active_ && prequeue_waiting == prequeue_waiting_ &&
                   head_ <= static_cast<int64_t>(order_.size()),
               absl::StrCat("the counters of queue ", concert_id_, " do not match its tokens"))) {
    return false;
  }
  // The WAITING join sequences, sized as Enqueue would have grown them.
  waiting_at_.Reset();
  if (order_.empty()) return true;
  waiting_at_.Reserve(static_cast<int64_t>(order_.size()) - 1);
  for (size_t seq = 0; seq < order_.size(); ++seq) {
    if (token(order_[seq]).status == TokenStatus::kWaiting) {
      waiting_at_.Set(static_cast<int64_t>(seq));
    }
  }
  return true;
}

}  // namespace boxoffice
