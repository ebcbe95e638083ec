// Ledger: see ledger.h for what it models and why.
#include "boxoffice/ledger.h"

#include "absl/strings/str_cat.h"
#include "boxoffice/assert.h"
#include "boxoffice/snapshot_io.h"

namespace boxoffice {

Ledger::Ledger() {
  balances_.push_back(0);
  kinds_.push_back(AccountKind::kFunding);
}

AccountId Ledger::OpenAccount(AccountKind kind) {
  BOXOFFICE_ASSERT(kind != AccountKind::kFunding);
  balances_.push_back(0);
  kinds_.push_back(kind);
  return static_cast<AccountId>(balances_.size() - 1);
}

void Ledger::Transfer(AccountId from, AccountId to, Won amount) {
  BOXOFFICE_ASSERT(amount > 0);
  BOXOFFICE_ASSERT(from != to);
  BOXOFFICE_ASSERT(from >= 0 && static_cast<size_t>(from) < balances_.size());
  BOXOFFICE_ASSERT(to >= 0 && static_cast<size_t>(to) < balances_.size());
  Won& src = balances_[static_cast<size_t>(from)];
  Won& dst = balances_[static_cast<size_t>(to)];
  BOXOFFICE_ASSERT(from == kFundingAccount || src >= amount);
  src -= amount;
  dst += amount;
}

EntryId Ledger::Record(UserId user, EntryKind kind, Won amount, Won balance_after, TimeUs at,
                       ReservationId reservation) {
  BOXOFFICE_ASSERT(amount > 0 && balance_after >= 0);
  HistoryEntry e;
  e.id = static_cast<EntryId>(entries_.size() + 1);
  e.user_id = user;
  e.kind = kind;
  e.amount = amount;
  e.balance_after = balance_after;
  e.at = at;
  e.reservation_id = reservation;
  entries_.push_back(e);
  return e.id;
}

Won Ledger::Sum() const {
  Won sum = 0;
  for (Won b : balances_) sum += b;
  return sum;
}

// --- snapshot ------------------------------------------------------------------------

// Tripwires: a new field must be added to the snapshot (then update the size).
static_assert(sizeof(HistoryEntry) == 56, "new HistoryEntry field: add it to the snapshot");
#if defined(__GLIBCXX__) && defined(__x86_64__)
static_assert(sizeof(Ledger) == 72, "new Ledger member: add it to the snapshot");
#endif

void Ledger::EncodeAccounts(SnapshotWriter& w) const {
  w.Count(balances_.size());
  for (size_t a = 0; a < balances_.size(); ++a) {
    w.U8(static_cast<uint8_t>(kinds_[a]));
    w.Int(balances_[a]);
  }
}

void Ledger::DecodeAccounts(SnapshotReader& r) {
  const size_t n = r.Count("accounts", 2);
  r.Check(n >= 1, "the funding account is missing");
  balances_.clear();
  kinds_.clear();
  balances_.reserve(n);
  kinds_.reserve(n);
  Won sum = 0;
  for (size_t a = 0; a < n && r.ok(); ++a) {
    const auto kind = r.Enum<AccountKind>("account kind", 3);
    const Won balance = r.Int();
    r.Check((a == 0) == (kind == AccountKind::kFunding),
            absl::StrCat("account ", a, " has the wrong kind"));
    r.Check(!__builtin_add_overflow(sum, balance, &sum), "account balances overflow");
    kinds_.push_back(kind);
    balances_.push_back(balance);
  }
  r.Check(sum == 0, "the ledger does not sum to zero");
}

void Ledger::EncodeHistory(SnapshotWriter& w) const {
  w.Count(entries_.size());
  TimeUs prev_at = 0;
  for (const HistoryEntry& h : entries_) {
    w.Int(h.user_id);
    w.U8(static_cast<uint8_t>(h.kind));
    w.Int(h.amount);
    w.Int(h.balance_after);
    w.Time(h.at, prev_at);
    prev_at = h.at;
    w.Int(h.reservation_id);
  }
}

void Ledger::DecodeHistory(SnapshotReader& r, int64_t users, int64_t reservations,
                           TimeUs clock) {
  const size_t n = r.Count("history entries", 6);
  entries_.reserve(n);
  TimeUs prev_at = 0;
  for (size_t i = 0; i < n && r.ok(); ++i) {
    HistoryEntry h;
    h.id = static_cast<EntryId>(i + 1);
    h.user_id = r.Int("history user", 1, users);
    h.kind = r.Enum<EntryKind>("history kind", 3);
    h.amount = r.Int();
    h.balance_after = r.Int();
    h.at = r.Past("history at", prev_at, clock);
    prev_at = h.at;
    h.reservation_id = r.Int("history reservation", 0, reservations);
    entries_.push_back(h);
  }
}

}  // namespace boxoffice
