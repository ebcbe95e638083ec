// The receipt: the reservation as the server has it now, with what the seat map kept of the
// payment (seat labels, the payment's answer) in this tab.
"use strict";
(async () => {
  const { api, showError, $, store, won, when } = BO;
  const rid = $("receipt").dataset.reservation;
  if (!(await BO.needLogin().catch((e) => { showError(e); return null; }))) return;
  const kept = JSON.parse(store.getItem("bo.receipt." + rid) || "null");
  try {
    const r = (await api("GET", `/v1/reservations/${rid}`)).data;
    const c = kept || (await api("GET", `/v1/concerts/${r.concert_id}`)).data;
    const schedule = kept ? null : c.schedules.find((s) => s.id === r.schedule_id);
    const startsAt = kept ? kept.starts_at : schedule && schedule.starts_at;
    $("r-concert").textContent = [c.title, c.venue].filter(Boolean).join(" · ");
    $("r-when").textContent = startsAt ? when(startsAt) : "–";
    $("r-seats").textContent = kept ? kept.seats.join(", ") : r.seats.map((id) => `seat ${id}`).join(", ");
    $("r-amount").textContent = won(r.amount);
    $("r-status").textContent = `#${r.id} ${r.status}`;
    const p = kept && kept.payment;
    $("r-payment").textContent = r.payment_id
      ? `#${r.payment_id}${p ? " · " + when(p.paid_at) : ""}` : "not paid";
    $("r-balance").textContent = p ? won(p.balance) : "–";
    BO.say(r.status === "CONFIRMED" ? "Paid: your seats are yours." : `This reservation is ${r.status}.`);
  } catch (e) { showError(e); }
})();
