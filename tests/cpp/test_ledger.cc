// Tests of Ledger: double-entry transfers between accounts keep the sum of
// all balances at zero; only the funding account may go negative; history
// entries are numbered from 1 and keep what was recorded.
#include "boxoffice/ledger.h"

#include "absl/strings/match.h"
#include "boxoffice/digest.h"
#include "boxoffice/snapshot_io.h"

#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace boxoffice {
namespace {

TEST_CASE("a new ledger has only the funding account, at zero", "[ledger]") {
  const Ledger ledger;
  CHECK(ledger.account_count() == 1);
  CHECK(Ledger::kFundingAccount == 0);
  CHECK(ledger.kind(Ledger::kFundingAccount) == AccountKind::kFunding);
  CHECK(ledger.balance(Ledger::kFundingAccount) == 0);
  CHECK(ledger.Sum() == 0);
  CHECK(ledger.entry_count() == 0);
}

TEST_CASE("accounts are numbered densely and start at zero", "[ledger]") {
  Ledger ledger;
  const AccountId wallet = ledger.OpenAccount(AccountKind::kWallet);
  const AccountId revenue = ledger.OpenAccount(AccountKind::kRevenue);
  const AccountId wallet2 = ledger.OpenAccount(AccountKind::kWallet);
  CHECK(wallet == 1);
  CHECK(revenue == 2);
  CHECK(wallet2 == 3);
  CHECK(ledger.account_count() == 4);
  CHECK(ledger.kind(wallet) == AccountKind::kWallet);
  CHECK(ledger.kind(revenue) == AccountKind::kRevenue);
  CHECK(ledger.balance(wallet) == 0);
  CHECK(ledger.balance(revenue) == 0);
}

TEST_CASE("charge, pay and refund as transfers; the funding account goes negative",
          "[ledger]") {
  Ledger ledger;
  const AccountId wallet = ledger.OpenAccount(AccountKind::kWallet);
  const AccountId revenue = ledger.OpenAccount(AccountKind::kRevenue);

  ledger.Transfer(Ledger::kFundingAccount, wallet, 300'000);  // charge
  CHECK(ledger.balance(wallet) == 300'000);
  CHECK(ledger.balance(Ledger::kFundingAccount) == -300'000);
  CHECK(ledger.Sum() == 0);

  ledger.Transfer(wallet, revenue, 165'000);  // payment
  CHECK(ledger.balance(wallet) == 135'000);
  CHECK(ledger.balance(revenue) == 165'000);
  CHECK(ledger.balance(Ledger::kFundingAccount) == -300'000);
  CHECK(ledger.Sum() == 0);

  ledger.Transfer(revenue, wallet, 165'000);  // refund
  CHECK(ledger.balance(wallet) == 300'000);
  CHECK(ledger.balance(revenue) == 0);
  CHECK(ledger.Sum() == 0);

  // Spending a wallet down to exactly zero is allowed.
  ledger.Transfer(wallet, revenue, 300'000);
  CHECK(ledger.balance(wallet) == 0);
  CHECK(ledger.balance(revenue) == 300'000);
  CHECK(ledger.Sum() == 0);
}

TEST_CASE("history entries are numbered from 1 and keep their fields", "[ledger]") {
  Ledger ledger;
  const EntryId charge = ledger.Record(5, EntryKind::kCharge, 100'000, 100'000, 1'000, 0);
  const EntryId payment = ledger.Record(5, EntryKind::kPayment, 60'000, 40'000, 2'000, 17);
  const EntryId refund = ledger.Record(6, EntryKind::kRefund, 60'000, 60'000, 3'000, 18);
  CHECK(charge == 1);
  CHECK(payment == 2);
  CHECK(refund == 3);
  CHECK(ledger.entry_count() == 3);

  const HistoryEntry& p = ledger.entry(payment);
  CHECK(p.id == payment);
  CHECK(p.user_id == 5);
  CHECK(p.kind == EntryKind::kPayment);
  CHECK(p.amount == 60'000);
  CHECK(p.balance_after == 40'000);
  CHECK(p.at == 2'000);
  CHECK(p.reservation_id == 17);
  CHECK(ledger.entry(charge).kind == EntryKind::kCharge);
  CHECK(ledger.entry(charge).reservation_id == 0);
  CHECK(ledger.entry(refund).user_id == 6);
  CHECK(ledger.entry(refund).kind == EntryKind::kRefund);

  // Recording history moves no money.
  CHECK(ledger.Sum() == 0);
  CHECK(ledger.balance(Ledger::kFundingAccount) == 0);

  CHECK(std::string(ToString(EntryKind::kCharge)) == "CHARGE");
  CHECK(std::string(ToString(EntryKind::kPayment)) == "PAYMENT");
  CHECK(std::string(ToString(EntryKind::kRefund)) == "REFUND");
}

TEST_CASE("random transfers conserve money and match a plain model", "[ledger]") {
  const uint64_t seed = GENERATE(1u, 7u, 99u);
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  Ledger ledger;
  std::vector<Won> model = {0};
  for (int i = 0; i < 20; ++i) {
    const AccountKind kind = i % 4 == 0 ? AccountKind::kRevenue : AccountKind::kWallet;
    CHECK(ledger.OpenAccount(kind) == static_cast<AccountId>(model.size()));
    model.push_back(0);
  }
  for (int step = 0; step < 5'000; ++step) {
    const auto from = static_cast<AccountId>(rng() % model.size());
    const auto to = static_cast<AccountId>(rng() % model.size());
    if (from == to) continue;
    const Won available =
        from == Ledger::kFundingAccount ? Won{10'000'000} : model[static_cast<size_t>(from)];
    if (available <= 0) continue;
    const Won amount = 1 + static_cast<Won>(rng() % static_cast<uint64_t>(available));
    ledger.Transfer(from, to, amount);
    model[static_cast<size_t>(from)] -= amount;
    model[static_cast<size_t>(to)] += amount;
    REQUIRE(ledger.Sum() == 0);
  }
  Won sum = 0;
  for (size_t a = 0; a < model.size(); ++a) {
    INFO("account " << a);
    CHECK(ledger.balance(static_cast<AccountId>(a)) == model[a]);
    if (a != 0) CHECK(ledger.balance(static_cast<AccountId>(a)) >= 0);
    sum += model[a];
  }
  CHECK(sum == 0);
  CHECK(ledger.balance(Ledger::kFundingAccount) < 0);
}


// --- snapshot -----------------------------------------------------------------------

// A digest of what `digest` feeds (the state hash's building block).
template <typename F>
uint64_t DigestOf(F&& digest) {
  Digest d;
  digest(d);
  return d.value();
}

TEST_CASE("accounts and history round-trip through a snapshot body", "[ledger][snapshot]") {
  Ledger ledger;
  const AccountId wallet = ledger.OpenAccount(AccountKind::kWallet);
  const AccountId revenue = ledger.OpenAccount(AccountKind::kRevenue);
  ledger.Transfer(Ledger::kFundingAccount, wallet, 50'000);
  ledger.Record(1, EntryKind::kCharge, 50'000, 50'000, 1'000, 0);
  ledger.Transfer(wallet, revenue, 30'000);
  ledger.Record(1, EntryKind::kPayment, 30'000, 20'000, 2'000, 1);
  SnapshotWriter w;
  ledger.EncodeAccounts(w);
  ledger.EncodeHistory(w);

  Ledger restored;
  SnapshotReader r(w.bytes(), 2);
  restored.DecodeAccounts(r);
  restored.DecodeHistory(r, /*users=*/1, /*reservations=*/1, /*clock=*/2'000);
  REQUIRE(r.ok());
  CHECK(r.AtEnd());
  CHECK(restored.account_count() == 3);
  CHECK(restored.balance(revenue) == 30'000);
  CHECK(restored.entry(2).reservation_id == 1);
  CHECK(DigestOf([&](Digest& d) { restored.Digest(d); }) ==
        DigestOf([&](Digest& d) { ledger.Digest(d); }));

  // The same history read with a clock before its last entry is damage.
  Ledger early;
  SnapshotReader late(w.bytes(), 2);
  early.DecodeAccounts(late);
  early.DecodeHistory(late, 1, 1, /*clock=*/1'999);
  CHECK(late.status().code() == absl::StatusCode::kDataLoss);
  CHECK(absl::StrContains(late.status().message(), "after the clock"));
}

TEST_CASE("accounts that do not sum to zero, or a second funding account, are damage",
          "[ledger][snapshot]") {
  auto decode = [](std::vector<std::pair<AccountKind, Won>> accounts) {
    SnapshotWriter w;
    w.Count(accounts.size());
    for (const auto& [kind, balance] : accounts) {
      w.U8(static_cast<uint8_t>(kind));
      w.Int(balance);
    }
    Ledger ledger;
    SnapshotReader r(w.bytes(), 2);
    ledger.DecodeAccounts(r);
    return r.status();
  };
  CHECK(decode({{AccountKind::kFunding, -5}, {AccountKind::kWallet, 5}}).ok());
  const absl::Status unbalanced = decode({{AccountKind::kFunding, -5}, {AccountKind::kWallet, 4}});
  CHECK(unbalanced.code() == absl::StatusCode::kDataLoss);
  CHECK(absl::StrContains(unbalanced.message(), "does not sum to zero"));
  const absl::Status two = decode({{AccountKind::kFunding, 0}, {AccountKind::kFunding, 0}});
  CHECK(absl::StrContains(two.message(), "account 1 has the wrong kind"));
  CHECK(absl::StrContains(decode({}).message(), "the funding account is missing"));
}

}  // namespace
}  // namespace boxoffice
