// The operator's dashboard: the admin key typed once (kept in this tab), every concert's
// stats polled from GET /v1/admin/concerts/{id}/stats every few seconds, with sparklines of
// the last minutes, and a form that creates a concert (the body of POST /v1/admin/concerts).
// The concerts, with their titles and queue capacities, come from GET /v1/admin/concerts (the
// newest first).
"use strict";
(() => {
  const { api, showError, say, el, $, store, won } = BO;
  const POLL_S = 3;
  const HISTORY_S = 600;  // the sparklines' span
  const RATE_WINDOW_S = 60;
  const SHOWN_MAX = 20;  // the newest concerts shown
  const SVG = "http://www.w3.org/2000/svg";
  const history = new Map();  // concert id -> [{t (ms), s (stats)}]
  const meta = {};  // id -> {title, capacity}

  const stats = (id) => api("GET", `/v1/admin/concerts/${id}/stats`, { admin: true });
  const newestConcerts = () =>
    api("GET", `/v1/admin/concerts?limit=${SHOWN_MAX}`, { admin: true });

  function remember(c) {
    meta[c.id] = { title: c.title, capacity: c.sale.queue_capacity };
  }

  function perMinute(samples) {
    const last = samples[samples.length - 1];
    const from = samples.find((x) => last.t - x.t <= RATE_WINDOW_S * 1000) || last;
    if (from === last) return null;
    const admitted = last.s.queue_admitted_total - from.s.queue_admitted_total;
    return (admitted * 60000) / (last.t - from.t);
  }

  function sparkline(values, label) {
    const w = 80, h = 20;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    svg.setAttribute("class", "spark");
    svg.setAttribute("role", "img");
    const lo = Math.min(...values), hi = Math.max(...values);
    svg.setAttribute("aria-label", `${label}, last ${Math.round(HISTORY_S / 60)} minutes: from ${lo} to ${hi}`);
    if (values.length > 1) {
      const span = hi - lo || 1;
      const pts = values.map((v, i) =>
        `${((i / (values.length - 1)) * w).toFixed(1)},${(h - 1 - ((v - lo) / span) * (h - 2)).toFixed(1)}`);
      const line = document.createElementNS(SVG, "polyline");
      line.setAttribute("points", pts.join(" "));
      svg.append(line);
    }
    return svg;
  }

  function cell(field, value, text, spark) {
    const td = el("td", { "data-field": field, "data-value": String(value) });
    td.append(el("span", { class: "num" }, text));
    if (spark) td.append(spark);
    return td;
  }

  function row(id) {
    const samples = history.get(id);
    const s = samples[samples.length - 1].s;
    const m = meta[id];
    const tr = el("tr", { "data-concert": String(id) });
    const th = el("th", { scope: "row" }, m ? m.title : `Concert #${id}`);
    th.append(el("span", { class: "hint" }, ` #${id}`));
    tr.append(th);
    const series = (f) => samples.map((x) => f(x.s));
    tr.append(cell("queue_waiting", s.queue_waiting, String(s.queue_waiting),
      sparkline(series((x) => x.queue_waiting), "waiting")));
    const cap = m ? m.capacity : null;
    const active = cell("queue_active", s.queue_active, `${s.queue_active} / ${cap ?? "?"}`);
    if (cap !== null) active.dataset.capacity = String(cap);
    tr.append(active);
    const rate = perMinute(samples);
    const rates = samples.map((_, i) => perMinute(samples.slice(0, i + 1)) || 0);
    tr.append(cell("admitted_per_minute", rate ?? "", rate === null ? "–" : rate.toFixed(1),
      sparkline(rates.map((r) => Math.round(r)), "admitted per minute")));
    const holds = s.reservations_pending;
    tr.append(cell("seats_held", s.seats_held, `${s.seats_held} (${holds} hold${holds === 1 ? "" : "s"})`));
    tr.append(cell("seats_sold", s.seats_sold, `${s.seats_sold} / ${s.seats_total}`,
      sparkline(series((x) => x.seats_sold), "sold seats")));
    tr.append(cell("revenue", s.revenue, won(s.revenue)));
    return tr;
  }

  async function refresh() {
    const concerts = (await newestConcerts()).data;
    concerts.forEach(remember);
    const ids = concerts.map((c) => c.id);
    const answers = await Promise.all(ids.map(stats));
    const now = Date.now();
    ids.forEach((id, i) => {
      const samples = history.get(id) || [];
      samples.push({ t: now, s: answers[i].data });
      while (now - samples[0].t > HISTORY_S * 1000) samples.shift();
      history.set(id, samples);
    });
    $("stats").tBodies[0].replaceChildren(...ids.map(row));
    say(ids.length ? `Updated ${new Date(now).toLocaleTimeString()}.` : "No concert yet: create one below.");
  }

  async function loop() {
    for (;;) {
      let delay = POLL_S;
      try { await refresh(); showError(null); } catch (e) {
        if (e.code === "ADMIN_KEY_INVALID") { forget(); showError(e); return; }
        showError(e);
        delay = e.retryAfterS || POLL_S;
      }
      await BO.sleep(delay);
    }
  }

  function lines(text) { return text.split("\n").map((l) => l.trim()).filter(Boolean); }
  function concertBody(f) {
    const sections = lines(f.sections.value).map((l) => {
      const [name, rows, perRow, grade, price] = l.split(",").map((x) => x.trim());
      return { name, rows: Number(rows), seats_per_row: Number(perRow), grade, price: Number(price) };
    });
    const sale = {};
    for (const k of ["queue_capacity", "admission_per_minute", "hold_ttl_s", "session_ttl_s",
      "max_seats_per_reservation", "poll_interval_s"]) {
      if (f[k].value !== "") sale[k] = Number(f[k].value);
    }
    if (f.opens_at.value.trim()) sale.opens_at = f.opens_at.value.trim();
    return {
      title: f.title.value.trim(), artist: f.artist.value.trim(), venue: f.venue.value.trim(),
      schedules: lines(f.starts.value).map((starts_at) => ({ starts_at, sections })), sale,
    };
  }

  async function create(ev) {
    ev.preventDefault();
    showError(null);
    try {
      const c = (await api("POST", "/v1/admin/concerts", { admin: true, body: concertBody(ev.target) })).data;
      remember(c);
      say(`Created concert #${c.id}, ${c.title}.`);
      await refresh();
    } catch (e) { showError(e); }
  }

  function forget() {
    store.removeItem("bo.admin");
    $("dash").hidden = true;
    $("account").hidden = true;
    $("key").hidden = false;
  }

  async function open() {
    $("key").hidden = true;
    $("dash").hidden = false;
    $("account").hidden = false;
    loop();
  }

  $("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    store.setItem("bo.admin", $("admin-key").value.trim());
    $("admin-key").value = "";
    showError(null);
    open();
  });
  $("forget").addEventListener("click", forget);
  $("concert-form").addEventListener("submit", create);
  if (store.getItem("bo.admin")) open(); else { $("key").hidden = false; $("admin-key").focus(); }
})();
