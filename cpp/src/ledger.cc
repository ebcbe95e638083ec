// Ledger: see ledger.h for what it models and why.
#include "boxoffice/ledger.h"

#include "boxoffice/assert.h"

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

}  // namespace boxoffice
