// The seat map of a concert's schedule, for a fan whose queue token is ACTIVE. A click on a
// free seat holds it (when no hold is pending), a click on one of yours releases it; "best N"
// holds N adjacent seats. One reservation at a time: paying it completes the queue token.
// The countdown runs to expires_at on the server's clock, and the hold is read again every few
// seconds, so an expiry shows even when the clocks disagree.
"use strict";
(() => {
  const { api, showError, say, el, $, store, go, won, when, duration, newKey } = BO;
  const cid = Number($("shop").dataset.concert);
  const RESERVATION_POLL_S = 3;
  const SEATS_POLL_S = 15;
  const STATUS_TEXT = { AVAILABLE: "available", HELD: "held", SOLD: "sold", MINE: "yours, held" };
  let token = BO.queueToken(cid);
  let concert = null;
  let scheduleId = null;
  let seats = new Map();  // seat id -> seat JSON, of the schedule shown
  let buttons = new Map();  // seat id -> its button
  let res = null;  // the reservation shown in the cart (PENDING, or ended since)
  let clock = null;  // {serverMs, at}: the server's time at a local performance.now()
  let payKey = null;
  let lastSeatsLoad = 0;
  let timers = [];  // the page's polls, stopped once the queue token no longer passes

  function gateLost(e) {
    if (e.code === "QUEUE_NOT_ACTIVE") { go(`/concerts/${cid}/wait`); return true; }
    if (e.code === "QUEUE_TOKEN_EXPIRED" || e.code === "QUEUE_TOKEN_INVALID") {
      timers.forEach(clearInterval);
      timers = [];
      store.removeItem("bo.queue." + cid);
      showError(e);
      say("Your turn in the queue is over: join again to buy.");
      const a = el("a", { href: `${BO.root}/concerts/${cid}/wait` }, "Join the queue again");
      $("status").append(" ", a);
      return true;
    }
    if (e.status === 401) { go("/"); return true; }
    return false;
  }

  const gated = (method, path, opts = {}) => api(method, path, { ...opts, queue: token });
  const serverNow = () => clock ? clock.serverMs + (performance.now() - clock.at) : Date.now();
  const isMine = (id) => Boolean(res && res.status === "PENDING" && res.seats.includes(id));

  async function loadSeats() {
    const items = [];
    let cursor = null;
    for (let page = 0; page < 50; page++) {  // 50 pages of 10,000: a schedule's limit is 200,000
      const q = `?limit=10000${cursor ? "&cursor=" + cursor : ""}`;
      const r = (await gated("GET", `/v1/schedules/${scheduleId}/seats${q}`)).data;
      items.push(...r.items);
      cursor = r.next_cursor;
      if (!cursor) break;
    }
    lastSeatsLoad = performance.now();
    const fresh = items.some((s) => !buttons.has(s.id)) || items.length !== buttons.size;
    seats = new Map(items.map((s) => [s.id, s]));
    if (fresh) buildMap(); else paintSeats();
  }

  function buildMap() {
    const map = $("map");
    buttons = new Map();
    const sections = new Map();
    for (const s of seats.values()) {
      if (!sections.has(s.section)) sections.set(s.section, new Map());
      const rows = sections.get(s.section);
      if (!rows.has(s.row)) rows.set(s.row, []);
      rows.get(s.row).push(s);
    }
    const parts = [];
    for (const [name, rows] of sections) {
      const first = rows.values().next().value[0];
      const sec = el("section", { class: "section", "aria-label": `Section ${name}` });
      sec.append(el("h3", {}, `Section ${name} · ${first.grade} · ${won(first.price)}`));
      for (const [row, list] of rows) {
        const line = el("div", { class: "seat-row", role: "group", "aria-label": `Section ${name}, row ${row}` });
        line.append(el("span", { class: "row-label", "aria-hidden": "true" }, String(row)));
        for (const s of list) {
          const b = el("button", { type: "button", class: "seat", "data-seat": String(s.id) }, String(s.number));
          b.addEventListener("click", () => clickSeat(s.id));
          buttons.set(s.id, b);
          line.append(b);
        }
        sec.append(line);
      }
      parts.push(sec);
    }
    map.replaceChildren(...parts);
    paintSeats();
  }

  function paintSeats() {
    for (const [id, b] of buttons) {
      const s = seats.get(id);
      const status = isMine(id) ? "MINE" : s.status;
      b.className = "seat seat-" + status.toLowerCase();
      b.dataset.status = status;
      b.disabled = status === "HELD" || status === "SOLD";
      b.setAttribute("aria-pressed", String(status === "MINE"));
      b.setAttribute("aria-label", `${s.label}, ${s.grade}, ${won(s.price)}, ${STATUS_TEXT[status]}`);
    }
  }

  function showCart() {
    $("cart").hidden = !res;
    if (!res) return;
    const labels = res.seats.map((id) => (seats.get(id) || { label: `seat ${id}` }).label);
    $("cart-seats").replaceChildren(...labels.map((l) => el("li", {}, l)));
    $("amount").textContent = won(res.amount);
    const pending = res.status === "PENDING";
    $("pay").disabled = !pending;
    $("cancel").disabled = !pending;
    tick();
  }

  function tick() {
    if (!res) return;
    const c = $("countdown");
    if (res.status !== "PENDING") {
      c.textContent = res.status === "EXPIRED" ? "expired" : res.status.toLowerCase();
      c.dataset.state = res.status;
      return;
    }
    const left = (Date.parse(res.expires_at) - serverNow()) / 1000;
    c.dataset.state = "PENDING";
    c.textContent = left > 0 ? duration(left) : "expiring…";
    if (left <= 0 && !tick.reading) refreshReservation();
  }

  async function refreshReservation() {
    if (!res || res.status !== "PENDING") return;
    tick.reading = true;
    try {
      const r = await api("GET", `/v1/reservations/${res.id}`);
      const ended = r.data.status !== "PENDING";
      res = r.data;
      if (ended) {
        say(res.status === "EXPIRED" ? "Your hold expired; its seats are free again." : `Your hold is ${res.status}.`);
        await loadSeats();
      }
      showCart();
    } catch (e) { if (!gateLost(e)) showError(e); } finally { tick.reading = false; }
  }

  function held(r) {
    res = r.data;
    clock = { serverMs: Date.parse(res.created_at), at: performance.now() };
    payKey = newKey();
    say(`Held ${res.seats.length} seat(s) until ${new Date(res.expires_at).toLocaleTimeString()}.`);
  }

  async function act(fn) {
    showError(null);
    try { await fn(); } catch (e) {
      if (gateLost(e)) return;
      showError(e);
    }
    try {
      await loadSeats();
      await loadBalance();
    } catch (e) { if (!gateLost(e)) showError(e); }
    showCart();
  }

  function onePending() {
    if (res && res.status === "PENDING") {
      say("You already hold seats: pay for them, or release them to choose others.");
      return true;
    }
    return false;
  }

  function clickSeat(id) {
    act(async () => {
      if (isMine(id)) {
        const r = await api("DELETE", `/v1/reservations/${res.id}/seats/${id}`);
        res = r.data.status === "PENDING" ? r.data : null;
        say(`Released ${seats.get(id).label}.`);
      } else if (!onePending()) {
        held(await gated("POST", "/v1/reservations",
          { body: { schedule_id: scheduleId, seat_ids: [id] }, key: newKey() }));
      }
    });
  }

  async function loadBalance() {
    const b = (await api("GET", "/v1/me/balance")).data.balance;
    $("balance").textContent = won(b);
    if (res && !$("charge").value) $("charge").value = String(Math.max(1, res.amount - b));
    return b;
  }

  async function pay() {
    showError(null);
    try {
      const p = (await gated("POST", "/v1/payments", { body: { reservation_id: res.id }, key: payKey })).data;
      const schedule = concert.schedules.find((s) => s.id === res.schedule_id);
      store.setItem("bo.receipt." + res.id, JSON.stringify({
        title: concert.title, venue: concert.venue, starts_at: schedule ? schedule.starts_at : null,
        seats: res.seats.map((id) => (seats.get(id) || { label: `seat ${id}` }).label), payment: p,
      }));
      store.removeItem("bo.queue." + cid);  // completed by the payment
      go(`/reservations/${res.id}/receipt`);
    } catch (e) {
      if (e.code === "INSUFFICIENT_BALANCE") {
        showError(e);
        await loadBalance();
        $("charge").focus();
      } else if (!gateLost(e)) {
        showError(e);
        await refreshReservation();
      }
    }
  }

  async function start() {
    if (!(await BO.needLogin())) return;
    if (!token) { go(`/concerts/${cid}/wait`); return; }
    concert = (await api("GET", `/v1/concerts/${cid}`)).data;
    $("concert-line").textContent = [concert.title, concert.artist, concert.venue].filter(Boolean).join(" · ");
    $("best-n").max = String(concert.sale.max_seats_per_reservation);
    for (const g of concert.grades) $("best-grade").append(el("option", { value: g }, g));
    const schedules = (await gated("GET", `/v1/concerts/${cid}/schedules`)).data.items;
    $("schedule").replaceChildren(...schedules.map((s) =>
      el("option", { value: String(s.id) }, `${when(s.starts_at)} · ${s.seats_available} free`)));
    const mine = (await api("GET", "/v1/me/reservations")).data.items;
    const pending = mine.filter((r) => r.concert_id === cid && r.status === "PENDING").pop();
    if (pending) {
      const r = await api("GET", `/v1/reservations/${pending.id}`);
      res = r.data;
      clock = { serverMs: r.serverMs, at: performance.now() };
      payKey = newKey();
    }
    scheduleId = res ? res.schedule_id : schedules[0].id;
    $("schedule").value = String(scheduleId);
    await loadSeats();
    await loadBalance();
    showCart();
    say("Choose your seats.");
    timers.push(setInterval(tick, 1000));
    timers.push(setInterval(() => {
      if (res && res.status === "PENDING") refreshReservation();
      if (performance.now() - lastSeatsLoad > SEATS_POLL_S * 1000) {
        loadSeats().catch((e) => { if (!gateLost(e)) showError(e); });
      }
    }, RESERVATION_POLL_S * 1000));
  }

  $("schedule").addEventListener("change", () => act(async () => {
    scheduleId = Number($("schedule").value);
    buttons = new Map();
  }));
  $("best-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    act(async () => {
      if (onePending()) return;
      const body = { schedule_id: scheduleId, quantity: Number($("best-n").value) };
      if ($("best-grade").value) body.grade = $("best-grade").value;
      held(await gated("POST", "/v1/reservations", { body, key: newKey() }));
    });
  });
  $("charge-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    act(async () => {
      const amount = Number($("charge").value);
      const r = (await api("POST", "/v1/me/balance/charges", { body: { amount }, key: newKey() })).data;
      $("balance").textContent = won(r.balance);
      $("charge").value = "";
      say(`Charged ${won(amount)}.`);
    });
  });
  $("pay").addEventListener("click", pay);
  $("cancel").addEventListener("click", () => act(async () => {
    await api("DELETE", `/v1/reservations/${res.id}`);
    res = null;
    say("Released your seats.");
  }));
  start().catch((e) => { if (!gateLost(e)) showError(e); });
})();
