// The waiting room: polls the queue token at the server's poll_after_s (or Retry-After), shows
// the place, the people ahead, the ETA and the progress since joining, and opens the seat map
// by itself once the token is ACTIVE. The token is kept in sessionStorage, so a reload keeps
// the place (joining again returns the same live token, never a second place).
"use strict";
(() => {
  const { api, showError, say, $, store, go, sleep, duration } = BO;
  const cid = $("wait").dataset.concert;
  const firstKey = "bo.first." + cid;

  function render(t) {
    if (t.position === null) {  // the pre-queue: shuffled when the sale opens
      $("place").textContent = "Drawn when the sale opens";
      $("ahead").textContent = "–";
      $("eta").textContent = "Opens in " + duration(t.eta_s);
      return;
    }
    const first = JSON.parse(store.getItem(firstKey) || "null");
    const start = first && first.tid === t.token_id ? Math.max(first.at, t.position) : t.position;
    store.setItem(firstKey, JSON.stringify({ tid: t.token_id, at: start }));
    $("place").textContent = String(t.position + 1);
    $("ahead").textContent = String(t.position);
    $("eta").textContent = t.eta_s === null ? "–" : "about " + duration(t.eta_s);
    $("progress").value = (start + 1 - t.position) / (start + 2);
  }

  function ended(text) {
    say(text);
    store.removeItem("bo.queue." + cid);
    $("rejoin").hidden = false;
  }

  async function join() {
    const t = (await api("POST", `/v1/concerts/${cid}/queue`)).data;
    store.setItem("bo.queue." + cid, t.queue_token);
    return t.queue_token;
  }

  async function poll() {
    $("rejoin").hidden = true;
    let token = BO.queueToken(cid);
    for (;;) {
      let delay = 5;
      try {
        if (!token) token = await join();
        const r = await api("GET", `/v1/concerts/${cid}/queue`, { queue: token });
        const t = r.data;
        showError(null);
        if (t.status === "ACTIVE") { say("It is your turn."); go(`/concerts/${cid}/seats`); return; }
        if (t.status === "EXPIRED") { ended(`Your place ended (${t.ended_reason}).`); return; }
        render(t);
        say("Waiting… this page checks again by itself.");
        delay = r.retryAfterS || t.poll_after_s;
      } catch (e) {
        if (e.status === 401) { go("/"); return; }
        if (e.code === "QUEUE_TOKEN_EXPIRED" || e.code === "QUEUE_TOKEN_INVALID") {
          ended(e.message); return;
        }
        showError(e);
        delay = e.retryAfterS || delay;
      }
      await sleep(delay);
    }
  }

  $("join").addEventListener("click", poll);
  if (!store.getItem("bo.access")) go("/"); else poll();
})();
