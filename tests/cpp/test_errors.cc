// Tests of the error table and of how codes and details travel in absl::Status.
//
// The stable code names are a public contract (Python exceptions and HTTP
// problem responses use them), so the table must be complete, unambiguous
// and map each code to an HTTP status that fits what the caller should do.
#include "absl/strings/match.h"
#include "boxoffice/errors.h"

#include <catch2/catch.hpp>

#include <cstdint>
#include <set>
#include <string>

#include "absl/status/status.h"

namespace boxoffice {
namespace {

std::string Name(ErrorCode code) { return std::string(GetErrorInfo(code).name); }

ErrorCode CodeAt(int i) { return static_cast<ErrorCode>(i); }

TEST_CASE("the error table is indexed by code and every name is distinct", "[errors]") {
  REQUIRE(kErrorCodeCount > 20);
  std::set<std::string> names;
  for (int i = 0; i < kErrorCodeCount; ++i) {
    const ErrorInfo& info = GetErrorInfo(CodeAt(i));
    INFO("code index " << i << " name " << info.name);
    CHECK(info.code == CodeAt(i));
    CHECK_FALSE(info.name.empty());
    // Stable codes are SCREAMING_SNAKE_CASE.
    for (char c : info.name) {
      CHECK(((c >= 'A' && c <= 'Z') || c == '_'));
    }
    CHECK(names.insert(std::string(info.name)).second);
  }
  CHECK(names.size() == static_cast<size_t>(kErrorCodeCount));
}

TEST_CASE("every code has an HTTP status that fits its absl code", "[errors]") {
  for (int i = 0; i < kErrorCodeCount; ++i) {
    const ErrorInfo& info = GetErrorInfo(CodeAt(i));
    INFO(info.name << " -> " << info.http_status);
    switch (info.status_code) {
      case absl::StatusCode::kOk:
        CHECK(info.http_status == 200);
        break;
      case absl::StatusCode::kInvalidArgument:
        CHECK((info.http_status == 400 || info.http_status == 422));
        break;
      case absl::StatusCode::kNotFound:
        CHECK(info.http_status == 404);
        break;
      case absl::StatusCode::kFailedPrecondition:
        // 503: the durable store cannot be used (locked, closed, too new).
        CHECK((info.http_status == 409 || info.http_status == 403 || info.http_status == 503));
        break;
      case absl::StatusCode::kUnavailable:
        CHECK(info.http_status == 503);
        break;
      case absl::StatusCode::kDataLoss:
        CHECK(info.http_status == 500);
        break;
      case absl::StatusCode::kPermissionDenied:
        CHECK(info.http_status == 403);
        break;
      case absl::StatusCode::kResourceExhausted:
        CHECK((info.http_status == 409 || info.http_status == 422 ||
               info.http_status == 429));
        break;
      case absl::StatusCode::kInternal:
        CHECK(info.http_status == 500);
        break;
      default:
        FAIL("unexpected absl code for " << info.name);
    }
    // Only a bug or the store's own trouble is a server error; bad input never is.
    const bool server_side = CodeAt(i) == ErrorCode::kInternal ||
                             CodeAt(i) == ErrorCode::kDataLoss ||
                             absl::StartsWith(info.name, "STORE_");
    if (!server_side && CodeAt(i) != ErrorCode::kOk) {
      CHECK(info.http_status >= 400);
      CHECK(info.http_status < 500);
    }
  }
}

TEST_CASE("the codes named in docs/http-api.md have their documented statuses",
          "[errors]") {
  struct Expected {
    ErrorCode code;
    const char* name;
    int http;
  };
  const Expected expected[] = {
      {ErrorCode::kOk, "OK", 200},
      {ErrorCode::kInvalidArgument, "INVALID_ARGUMENT", 422},
      {ErrorCode::kInvalidAmount, "INVALID_AMOUNT", 422},
      {ErrorCode::kSeatUnavailable, "SEAT_UNAVAILABLE", 409},
      {ErrorCode::kHoldExpired, "HOLD_EXPIRED", 409},
      {ErrorCode::kInsufficientBalance, "INSUFFICIENT_BALANCE", 409},
      {ErrorCode::kQueueNotActive, "QUEUE_NOT_ACTIVE", 403},
      {ErrorCode::kQueueTokenExpired, "QUEUE_TOKEN_EXPIRED", 403},
      {ErrorCode::kQueueTokenInvalid, "QUEUE_TOKEN_INVALID", 403},
      {ErrorCode::kReservationNotFound, "RESERVATION_NOT_FOUND", 404},
      {ErrorCode::kQueueFull, "QUEUE_FULL", 429},
      {ErrorCode::kInternal, "INTERNAL", 500},
  };
  for (const Expected& e : expected) {
    INFO(e.name);
    CHECK(Name(e.code) == e.name);
    CHECK(GetErrorInfo(e.code).http_status == e.http);
  }
}

TEST_CASE("MakeError round-trips every code through a Status", "[errors]") {
  for (int i = 1; i < kErrorCodeCount; ++i) {  // 0 is OK
    const ErrorCode code = CodeAt(i);
    INFO(Name(code));
    const absl::Status s = MakeError(code, "something went wrong");
    CHECK_FALSE(s.ok());
    CHECK(s.code() == GetErrorInfo(code).status_code);
    CHECK(s.message() == "something went wrong");
    CHECK(GetErrorCode(s) == code);
    // A copy carries the same code.
    const absl::Status copy = s;
    CHECK(GetErrorCode(copy) == code);
  }
}

TEST_CASE("GetErrorCode: OK for OK, INTERNAL for foreign statuses", "[errors]") {
  CHECK(GetErrorCode(absl::OkStatus()) == ErrorCode::kOk);
  CHECK(GetErrorCode(absl::NotFoundError("plain absl")) == ErrorCode::kInternal);
  CHECK(GetErrorCode(absl::InvalidArgumentError("plain absl")) == ErrorCode::kInternal);
  CHECK(GetErrorCode(absl::UnknownError("plain absl")) == ErrorCode::kInternal);
}

TEST_CASE("error details round-trip, absent ones stay absent", "[errors]") {
  SECTION("all details") {
    ErrorDetails d;
    d.position = 12'345;
    d.eta_us = 987'654'321'000;
    d.seat_id = 42;
    d.retry_after_us = 5'000'000;
    const absl::Status s = MakeError(ErrorCode::kQueueNotActive, "wait", d);
    const ErrorDetails got = GetErrorDetails(s);
    CHECK(got.position == d.position);
    CHECK(got.eta_us == d.eta_us);
    CHECK(got.seat_id == d.seat_id);
    CHECK(got.retry_after_us == d.retry_after_us);
    CHECK(GetErrorCode(s) == ErrorCode::kQueueNotActive);
  }
  SECTION("no details") {
    const ErrorDetails got =
        GetErrorDetails(MakeError(ErrorCode::kSeatNotFound, "no such seat"));
    CHECK_FALSE(got.position.has_value());
    CHECK_FALSE(got.eta_us.has_value());
    CHECK_FALSE(got.seat_id.has_value());
    CHECK_FALSE(got.retry_after_us.has_value());
  }
  SECTION("some details, including zero and extremes") {
    ErrorDetails d;
    d.position = 0;
    d.seat_id = INT64_MAX;
    d.eta_us = INT64_MIN;
    const ErrorDetails got = GetErrorDetails(MakeError(ErrorCode::kSeatUnavailable, "", d));
    CHECK(got.position == std::optional<int64_t>(0));
    CHECK(got.seat_id == std::optional<int64_t>(INT64_MAX));
    CHECK(got.eta_us == std::optional<int64_t>(INT64_MIN));
    CHECK_FALSE(got.retry_after_us.has_value());
  }
  SECTION("a plain status has no details") {
    const ErrorDetails got = GetErrorDetails(absl::OkStatus());
    CHECK_FALSE(got.position.has_value());
    CHECK_FALSE(got.seat_id.has_value());
  }
}

TEST_CASE("a Refusal and a Status carry the same code, message and details", "[errors]") {
  ErrorDetails d;
  d.position = 7;
  d.retry_after_us = 5'000'000;
  const Refusal refusal(ErrorCode::kQueueNotActive, "queue token 3 is WAITING; 7 ahead", d);
  const absl::Status s = refusal.ToStatus();
  CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(s.message() == refusal.message);
  CHECK(GetErrorCode(s) == ErrorCode::kQueueNotActive);
  CHECK(GetErrorDetails(s).position == d.position);
  CHECK(GetErrorDetails(s).retry_after_us == d.retry_after_us);
  CHECK_FALSE(GetErrorDetails(s).eta_us.has_value());

  const Refusal back = Refusal::FromStatus(s);
  CHECK(back.code == refusal.code);
  CHECK(back.message == refusal.message);
  CHECK(back.details.position == d.position);
  CHECK(back.details.retry_after_us == d.retry_after_us);
  CHECK_FALSE(back.details.seat_id.has_value());

  // A status from below the engine, without a code, keeps its message as INTERNAL.
  const Refusal foreign = Refusal::FromStatus(absl::UnavailableError("disk gone"));
  CHECK(foreign.code == ErrorCode::kInternal);
  CHECK(foreign.message == "disk gone");
}

}  // namespace
}  // namespace boxoffice
