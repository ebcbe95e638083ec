// Ledger: double-entry accounting of money in integer won (charges, payments, refunds).
//
// Every movement is a transfer between two accounts, so the sum of all
// balances is zero by construction. Money enters through the external
// funding account (which alone may go negative: its balance is minus the
// money held inside the system), sits in user wallets, moves to a concert's
// revenue account on payment, and back to the wallet on refund. User-visible
// history (CHARGE, PAYMENT, REFUND) is recorded with `balance_after`.
#pragma once

#include <cstdint>
#include "absl/strings/string_view.h"
#include <vector>

#include "boxoffice/types.h"

namespace boxoffice {

class SnapshotReader;
class SnapshotWriter;

enum class EntryKind : uint8_t { kCharge = 0, kPayment = 1, kRefund = 2 };
absl::string_view ToString(EntryKind k);

enum class AccountKind : uint8_t { kFunding = 0, kWallet = 1, kRevenue = 2 };

struct HistoryEntry {
  EntryId id = 0;
  UserId user_id = 0;
  EntryKind kind = EntryKind::kCharge;
  Won amount = 0;         // always positive; the kind gives the direction
  Won balance_after = 0;  // the wallet balance right after this entry
  TimeUs at = 0;
  ReservationId reservation_id = 0;  // PAYMENT and REFUND
};

class Ledger {
 public:
  static constexpr AccountId kFundingAccount = 0;

  Ledger();
  AccountId OpenAccount(AccountKind kind);
  Won balance(AccountId a) const { return balances_[static_cast<size_t>(a)]; }
  AccountKind kind(AccountId a) const { return kinds_[static_cast<size_t>(a)]; }
  size_t account_count() const { return balances_.size(); }

  // Moves `amount` (> 0) from one account to another. Asserts that no
  // account but the funding account goes negative: callers check first.
  void Transfer(AccountId from, AccountId to, Won amount);
  // Appends a user-visible history entry and returns its id.
  EntryId Record(UserId user, EntryKind kind, Won amount, Won balance_after,
                 TimeUs at, ReservationId reservation);
  const HistoryEntry& entry(EntryId id) const { return entries_[static_cast<size_t>(id - 1)]; }
  int64_t entry_count() const { return static_cast<int64_t>(entries_.size()); }

  // Sum over all accounts: always 0.
  Won Sum() const;

  // Snapshot (snapshot_io.h): the accounts (kind and balance of each) and the
  // history are two sections of the body. DecodeAccounts replaces every
  // account and checks that the funding account comes first and alone and
  // that the balances sum to zero; DecodeHistory checks that each entry names
  // a user in [1, users] and a reservation in [0, reservations] and happened
  // in order, not after `clock`. Damage fails the reader (DATA_LOSS).
  void EncodeAccounts(SnapshotWriter& w) const;
  void DecodeAccounts(SnapshotReader& r);
  void EncodeHistory(SnapshotWriter& w) const;
  void DecodeHistory(SnapshotReader& r, int64_t users, int64_t reservations, TimeUs clock);

  // Feeds the balances and the history to `mix` (for state hashes).
  template <typename Mix>
  void Digest(Mix&& mix) const {
    for (Won b : balances_) mix(b);
    for (const HistoryEntry& e : entries_) {
      mix(e.user_id);
      mix(static_cast<int64_t>(e.kind));
      mix(e.amount);
      mix(e.balance_after);
      mix(e.at);
      mix(e.reservation_id);
    }
  }

 private:
  std::vector<Won> balances_;
  std::vector<AccountKind> kinds_;
  std::vector<HistoryEntry> entries_;
};

}  // namespace boxoffice
