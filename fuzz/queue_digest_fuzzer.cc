// queue_digest_fuzzer: arbitrary bytes as a queue digest (queue_digest.h).
//
// A cluster's HTTP workers decode the digests replicas publish on NATS and answer polls from
// them, so the decoder must refuse damaged bytes cleanly and never allocate more than a
// digest may hold (kQueueDigestWordsMax words). For every input this target checks:
//   1. QueueDigest::Decode does not crash; bytes it refuses are DATA_LOSS, "damaged queue
//      digest: ...".
//   2. A digest it accepts answers consistently: for the first join sequences (up to 2^14),
//      a position is -1 or exactly the number of WAITING join sequences before it (ranks
//      count up by one), never beyond the WAITING count; the ETA of each position is
//      non-negative and never shrinks as the position grows.
//
// Run: build/fuzz/queue_digest_fuzzer build/fuzz/corpus-work/queue_digest_fuzzer
// Replay one input: build/fuzz/queue_digest_fuzzer <file>
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "boxoffice/queue_digest.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace boxoffice_fuzz;  // NOLINT
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<QueueDigest> digest = QueueDigest::Decode(bytes);
  if (!digest.ok()) {
    Check(digest.status().code() == absl::StatusCode::kDataLoss &&
              absl::StartsWith(digest.status().message(), "damaged queue digest: "),
          "a refused digest is not DATA_LOSS: " + digest.status().ToString());
    return 0;
  }
  const int64_t end = std::min<int64_t>(digest->joined(), int64_t{1} << 14);
  int64_t waiting_before = 0;
  DurationUs last_eta = 0;
  for (int64_t seq = -1; seq <= end; ++seq) {
    const int64_t position = digest->Position(seq);
    if (position < 0) {
      Check(position == -1, "a position below -1");
      continue;
    }
    Check(seq >= 0 && seq < digest->joined(), "a position for a join sequence out of range");
    Check(position < digest->waiting(), "a position beyond the WAITING count");
    // Join sequences before the bitmap's first word are never WAITING, so a rank counts
    // exactly the WAITING join sequences seen so far.
    Check(position == waiting_before,
          absl::StrCat("join sequence ", seq, " is at ", position, " after ", waiting_before,
                       " WAITING"));
    ++waiting_before;
    const DurationUs eta = digest->Eta(position);
    Check(eta >= 0 && eta >= last_eta,
          absl::StrCat("the ETA of position ", position, " is ", eta, " after ", last_eta));
    last_eta = eta;
  }
  return 0;
}
