// Helpers shared by every page: calls to the public HTTP API with the visitor's credentials
// (kept in sessionStorage: this tab only, and they survive a reload), problem+json errors
// shown by their detail, and formatting. Every text is set with textContent, never as markup.
"use strict";
const BO = (() => {
  const root = document.documentElement.dataset.root || "";
  const store = window.sessionStorage;
  const $ = (id) => document.getElementById(id);

  class ApiError extends Error {
    constructor(status, problem, retryAfterS) {
      super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
      this.status = status;
      this.code = (problem && problem.code) || `HTTP_${status}`;
      this.problem = problem || {};
      this.retryAfterS = retryAfterS;
    }
  }

  // A fresh Idempotency-Key (crypto.randomUUID needs a secure context; this does not).
  function newKey() {
    const b = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

  function retryAfter(response) {
    const v = Number(response.headers.get("Retry-After"));
    return Number.isFinite(v) && v > 0 ? v : null;
  }

  // One API call. opts: body (JSON), auth (send the access JWT; default true), queue (a queue
  // token), admin (send the admin key), key (an Idempotency-Key). Resolves to
  // {data, status, retryAfterS, serverMs (the Date header)}; rejects with ApiError (network
  // failures too, as status 0).
  async function api(method, path, opts = {}) {
    const headers = { Accept: "application/json" };
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    if (opts.auth !== false && !opts.admin && store.getItem("bo.access")) {
      headers.Authorization = "Bearer " + store.getItem("bo.access");
    }
    if (opts.queue) headers["X-Queue-Token"] = opts.queue;
    if (opts.admin) headers["X-Admin-Key"] = store.getItem("bo.admin") || "";
    if (opts.key) headers["Idempotency-Key"] = opts.key;
    let response;
    try {
      response = await fetch(root + path, {
        method,
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        cache: "no-store",
      });
    } catch (e) {
      throw new ApiError(0, { detail: "The server cannot be reached; retrying shortly." }, 5);
    }
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) {
      if (response.status === 401 && !opts.admin && opts.auth !== false) {
        store.removeItem("bo.access");
      }
      throw new ApiError(response.status, data, retryAfter(response));
    }
    const date = Date.parse(response.headers.get("Date") || "");
    return { data, status: response.status, retryAfterS: retryAfter(response),
      serverMs: Number.isNaN(date) ? Date.now() : date };
  }

  function showError(err) {
    const el = $("error");
    if (!el) return;
    if (!err) { el.hidden = true; el.textContent = ""; return; }
    el.textContent = err instanceof ApiError ? err.message : "Something went wrong; try again.";
    el.hidden = false;
    if (!(err instanceof ApiError)) console.error(err);
  }

  function say(text) { const el = $("status"); if (el) el.textContent = text; }

  const won = (n) => n.toLocaleString("en-US") + " won";
  const when = (iso) => new Date(iso).toLocaleString(undefined,
    { dateStyle: "medium", timeStyle: "short" });
  function duration(s) {
    s = Math.max(0, Math.round(s));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
    return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  }
  function el(tag, attrs = {}, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") e.className = v; else e.setAttribute(k, v);
    }
    if (text !== undefined) e.textContent = text;
    return e;
  }
  const go = (path) => window.location.assign(root + path);
  const sleep = (s) => new Promise((r) => setTimeout(r, s * 1000));

  // The account bar and the log-in requirement of the fan's pages.
  async function needLogin() {
    if (!store.getItem("bo.access")) { go("/"); return null; }
    try {
      const me = (await api("GET", "/v1/me")).data;
      if ($("who")) $("who").textContent = me.email;
      if ($("account")) $("account").hidden = false;
      return me;
    } catch (e) {
      if (e.status === 401) { go("/"); return null; }
      throw e;
    }
  }
  function logoutButton() {
    const b = $("logout");
    if (b) b.addEventListener("click", () => { store.clear(); go("/"); });
  }
  document.addEventListener("DOMContentLoaded", logoutButton);

  const queueToken = (cid) => store.getItem("bo.queue." + cid);
  return { ApiError, api, newKey, showError, say, won, when, duration, el, go, sleep, $, store,
    needLogin, queueToken, root };
})();
