// Catalog: the store's state as plain SQL tables, for analysts and operators.
//
// The journal and snapshots are opaque bytes; these tables are how the same
// SQLite file answers `SELECT`s. The store rewrites them on close and at every
// explicit snapshot (Engine.snapshot()), inside one transaction, so each table
// is the state as of that moment (for the live state, use
// boxoffice.export.frames):
//
//   catalog_concerts(id, title, artist, venue, created_at_us, opens_at_us,
//                    queue_capacity, admission_per_minute, session_ttl_us,
//                    hold_ttl_us, max_seats_per_reservation,
//                    max_seats_per_user, release_on_payment_failure)
//   catalog_schedules(id, concert_id, starts_at_us, seats_total)
//   catalog_seats(id, schedule_id, label, section, row, number, grade,
//                 price, status)              -- status: AVAILABLE|HELD|SOLD
//   catalog_users(id, balance)                -- won
//   catalog_meta(key, value)                  -- 'clock_us', 'journal_seq'
//
// Times are microseconds since the Unix epoch (NULL for "not set"), money is
// integer won. Optional limits are NULL when unset.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "boxoffice/engine.h"

namespace boxoffice {

// Rewrites the catalog tables of the SQLite file at `path` from `engine`'s
// state as of its clock (reads only: nothing is journaled). STORE_UNAVAILABLE
// when the file cannot be written.
absl::Status WriteCatalog(Engine& engine, const std::string& path, Seq journal_seq);

}  // namespace boxoffice
