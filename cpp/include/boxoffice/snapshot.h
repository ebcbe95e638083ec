// Snapshot: the whole state of an Engine as bytes, and an Engine rebuilt from
// them (recovery = latest snapshot + replay of the journal tail through the
// same command code).
//
// A snapshot is a consistent cut: SaveSnapshot holds the engine's lock while it
// encodes, so it sits between two commands. LoadSnapshot returns a fresh,
// fully working Engine (its queues point at its own token table, timer and
// event log) whose StateHash() equals the original's and which answers every
// later command exactly as the original would. The loaded engine has no
// CommandSink (Engine::sink_ is wiring, not state): whoever recovers sets one
// after replaying the tail.
//
// What is stored: the config (limits, seed), the clock, the journal sequence
// of the last recorded command, users and their wallets, concerts with their
// sale settings, schedules with their seat maps and the status and holder of
// every seat, each queue's scalar state (open, head, counters, GCRA budget
// next_admit_at, tick_at, recent admissions), every queue token, reservation
// and payment, the ledger (account kinds and balances, history entries),
// per-user seat counts, idempotency records with their stored results and the
// next record id, the pending admission ticks, and the event log (last
// sequence and the retained events).
// What is rebuilt, because it is an index of the above: each queue's join
// order, pre-queue, rank bitmap and abandon line (from the tokens' join
// sequences, states and last polls) and the live tokens per user; every timer
// deadline other than admission ticks (hold expiry, session expiry, abandon,
// queue opening, idempotency
// expiry — each is a pure function of the thing it times out); users'
// reservation and history lists; a concert's grades, schedule list,
// reservation counts per status and payment count; the idempotency index;
// the next seat id.
//
// Who encodes what: each part of the state is encoded, decoded and digested
// (for StateHash) by the class that owns it, and no class reads another's
// private members: AdmissionQueue its scalars and the layout of its tokens,
// SeatInventory its seat map and the status of its seats, Ledger the accounts
// and the history, HoldTimer the admission ticks, EventLog the events, and the
// engine its own tables and the order of the sections (engine_state.cc). The
// byte level is snapshot_io.h; SnapshotCodec (below) only frames the body.
//
// Format (all integers little-endian; "varint" is LEB128, "zigzag" maps
// signed to unsigned before the varint):
//   "BXSNAP"  6 bytes of magic
//   version   uint16 (kSnapshotVersion)
//   length    uint64, bytes of the body
//   body      sections in a fixed order, each opening with a one-byte tag;
//             counts and string lengths are varints checked against the
//             bytes left before anything is allocated; times are zigzag
//             deltas from a nearby time (kNever is a 0)
//   checksum  uint64, boxoffice::Digest over every byte before it
//
// Errors of LoadSnapshot (it never crashes or asserts, whatever the bytes):
//   INVALID_ARGUMENT (MakeError, ErrorCode::kInvalidArgument): the bytes are
//     not a boxoffice snapshot (wrong magic), or were written by a newer or
//     unknown format version — upgrade boxoffice to read them.
//   absl::StatusCode::kDataLoss: the snapshot is damaged — truncated, a
//     checksum mismatch, a malformed or out-of-range field, cross-references
//     that do not agree, or a restored state that fails CheckInvariants().
//     Fall back to an older snapshot (and a longer journal replay).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "boxoffice/engine.h"

namespace boxoffice {

inline constexpr char kSnapshotMagic[] = "BXSNAP";  // 6 bytes, without the NUL
// The version SaveSnapshot writes, and the oldest LoadSnapshot still reads:
//   1  every queue token with five times (joined, last seen, activated,
//      expires, ended);
//   2  a queue token's times by its state (none more while WAITING, activated
//      once ACTIVE, ended once EXPIRED): expires_at follows from activated_at
//      and the concert's session TTL. Version 1 loads when its expires_at
//      agrees (admission_queue.h, TokenRecord).
inline constexpr uint16_t kSnapshotVersion = 2;
inline constexpr uint16_t kSnapshotVersionOldest = 1;

// Serializes every piece of state of `engine` (see above). Takes the engine's
// lock for the duration; does not change the engine (not even its clock).
// The bytes are deterministic: equal states give equal snapshots.
// `journal_seq`, when given, receives the journal sequence of the last
// command the engine recorded before the cut (its CommandSink's number; 0
// without a sink): the snapshot is the state after exactly that command. The
// snapshot stores it too, and LoadSnapshot restores it.
std::string SaveSnapshot(Engine& engine, Seq* journal_seq = nullptr);

// A new Engine with exactly the state `bytes` describe; see above for errors.
absl::StatusOr<std::unique_ptr<Engine>> LoadSnapshot(absl::string_view bytes);

// The framing of a snapshot: magic, version, body length and checksum around
// the body the engine encodes and decodes itself, each component its own part
// (engine_state.cc, snapshot_io.h). The one friend of Engine, for its two
// entry points (Engine::EncodeState, Engine::DecodeState).
class SnapshotCodec {
 public:
  static std::string Save(Engine& engine, Seq* journal_seq);
  static absl::StatusOr<std::unique_ptr<Engine>> Load(absl::string_view bytes);
};

}  // namespace boxoffice
