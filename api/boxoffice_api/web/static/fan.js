// The fan's first page: log in or sign up, search the concerts, join a queue.
"use strict";
(() => {
  const { api, showError, say, el, $, store, go, when } = BO;

  async function credentials(signUp) {
    const email = $("email").value.trim();
    const password = $("password").value;
    showError(null);
    try {
      if (signUp) await api("POST", "/v1/users", { body: { email, password }, auth: false });
      const token = (await api("POST", "/v1/auth/token", { body: { email, password }, auth: false })).data;
      store.setItem("bo.access", token.access_token);
      $("password").value = "";
      await show();
    } catch (e) { showError(e); }
  }

  async function join(concert) {
    showError(null);
    try {
      const t = (await api("POST", `/v1/concerts/${concert.id}/queue`)).data;
      store.setItem("bo.queue." + concert.id, t.queue_token);
      go(`/concerts/${concert.id}/${t.status === "ACTIVE" ? "seats" : "wait"}`);
    } catch (e) { showError(e); }
  }

  function concertItem(c) {
    const li = el("li", { class: "card concert" });
    li.append(el("h2", {}, c.title));
    li.append(el("p", {}, [c.artist, c.venue].filter(Boolean).join(" · ")));
    const dates = c.schedules.map((s) => `${when(s.starts_at)} (${s.seats_available} of ${s.seats_total} free)`);
    li.append(el("p", { class: "hint" }, dates.join("; ")));
    const b = el("button", { type: "button", "data-concert": String(c.id) }, "Join the queue");
    b.setAttribute("aria-label", `Join the queue for ${c.title}`);
    b.addEventListener("click", () => join(c));
    li.append(b);
    return li;
  }

  async function search() {
    const q = $("q").value.trim();
    try {
      const list = (await api("GET", "/v1/concerts" + (q ? "?q=" + encodeURIComponent(q) : ""))).data;
      const ul = $("concerts");
      ul.replaceChildren(...list.items.map(concertItem));
      say(list.items.length ? `${list.items.length} concert(s)` : "No concert matches.");
    } catch (e) {
      if (e.status === 401) return show();
      showError(e);
    }
  }

  async function show() {
    const loggedIn = Boolean(store.getItem("bo.access"));
    $("auth").hidden = loggedIn;
    $("browse").hidden = !loggedIn;
    if (!loggedIn) { $("account").hidden = true; $("email").focus(); return; }
    try { await BO.needLogin(); } catch (e) { showError(e); }
    await search();
  }

  $("auth-form").addEventListener("submit", (ev) => { ev.preventDefault(); credentials(false); });
  $("signup").addEventListener("click", () => {
    if ($("auth-form").reportValidity()) credentials(true);
  });
  $("search").addEventListener("submit", (ev) => { ev.preventDefault(); search(); });
  show();
})();
