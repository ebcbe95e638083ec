// Tests of Ledger: double-entry transfers between accounts keep the sum of
// all balances at zero; only the funding account may go negative; history
// entries are numbered from 1 and keep what was recorded.
#include "boxoffice/ledger.h"

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

}  // namespace
}  // namespace boxoffice
