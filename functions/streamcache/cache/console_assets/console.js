// The streamcache console: one page over the cache's own HTTP API (docs/api.md). Keys and values
// are untrusted input, so everything from the cache is shown with textContent, never as HTML; the
// function serves this file under a Content-Security-Policy that allows no other script.
"use strict";

const PAGE = 50;
const SHOWN_BYTES = 64 * 1024; // larger values show truncated, with a download link
const base = location.pathname.replace(/\/console\/?$/, "");
const api = { cache: null, changes: base + "/changes", health: base + "/health", config: base + "/console/config.json" };
const $ = (id) => document.getElementById(id);
const state = { cursor: null, item: null, bytes: null, paused: false, token: "latest", lag: [], latency: [] };

// ---- the API key: asked for when the cache answers 401, kept in sessionStorage (this tab only) ----
function apiKey() { return sessionStorage.getItem("streamcache-api-key"); }

async function call(method, path, { body, headers = {} } = {}) {
  const key = apiKey();
  const started = performance.now();
  const response = await fetch(path, { method, body, headers: { ...headers, ...(key ? { "X-Api-Key": key } : {}) } });
  state.latency.push(performance.now() - started);
  // A request sent before the key was entered can answer 401 after it was: send it again with the
  // key instead of asking for one more time (the page's first calls all go out without a key).
  if (response.status === 401 && apiKey() !== key) return call(method, path, { body, headers });
  if (response.status === 401) {
    $("key-form").hidden = false;
    $("api-key").focus();
    throw new Error("this cache needs an API key");
  }
  return response;
}

async function problem(response) {
  try { const doc = await response.json(); return `${response.status} ${doc.error}: ${doc.message}`; }
  catch { return `${response.status}`; }
}

// A <dl> of [name, value] rows, as text.
function showDefinitions(list, rows) {
  list.replaceChildren(...rows.flatMap(([name, value]) => {
    const dt = document.createElement("dt"); dt.textContent = name;
    const dd = document.createElement("dd"); dd.textContent = value;
    return [dt, dd];
  }));
}

function say(text, error = false) { $("status").textContent = text; $("status").className = error ? "error" : ""; }

// ---- keys ----
async function listKeys(more = false) {
  if (!more) { $("key-list").replaceChildren(); state.cursor = null; }
  // Strong reads: a console is for looking at the truth now, and it makes few calls.
  const query = new URLSearchParams({ prefix: $("prefix").value, limit: String(PAGE), consistency: "strong" });
  if (state.cursor) query.set("cursor", state.cursor);
  const response = await call("GET", `${api.cache}?${query}`);
  if (!response.ok) return say(await problem(response), true);
  const page = await response.json();
  for (const info of page.keys) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = info.key;
    button.title = `${info.size} bytes, version ${info.version}`;
    button.addEventListener("click", () => openKey(info.key));
    const li = document.createElement("li");
    li.append(button);
    $("key-list").append(li);
  }
  state.cursor = page.cursor;
  $("more").hidden = !page.cursor;
  say(`${$("key-list").children.length} keys${page.cursor ? " so far" : ""}`);
}

function keyPath(key) { return `${api.cache}/${encodeURIComponent(key)}`; }

async function openKey(key) {
  const response = await call("GET", keyPath(key) + "?consistency=strong");
  $("item-error").textContent = "";
  if (!response.ok) return say(await problem(response), true);
  const bytes = new Uint8Array(await response.arrayBuffer());
  state.item = { key, version: (response.headers.get("ETag") || "").replaceAll('"', ""),
                 type: response.headers.get("Content-Type") || "application/octet-stream",
                 expires: response.headers.get("Expires") };
  state.bytes = bytes;
  $("item").hidden = false;
  const meta = [["key", key], ["content type", state.item.type], ["version", state.item.version],
                ["expires", state.item.expires || "never"], ["size", `${bytes.length} bytes`]];
  showDefinitions($("item-meta"), meta);
  $("edit-key").value = key;
  $("edit-type").value = state.item.type;
  $("edit-ttl").value = "";
  $("edit-value").value = new TextDecoder().decode(bytes.subarray(0, SHOWN_BYTES));
  const download = $("download");
  if (download.href) URL.revokeObjectURL(download.href);
  download.href = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
  download.download = key.replaceAll("/", "_");
  $("view-as").value = /^application\/([\w.+-]+\+)?json\b/.test(state.item.type) ? "json" : "text";
  showValue();
}

function showValue() {
  const bytes = state.bytes;
  if (!bytes) return;
  const shown = bytes.subarray(0, SHOWN_BYTES);
  const as = $("view-as").value;
  let text = new TextDecoder().decode(shown);
  if (as === "json") {
    try { text = JSON.stringify(JSON.parse(new TextDecoder().decode(bytes)), null, 2).slice(0, SHOWN_BYTES); }
    catch { text = "(not JSON) " + text; }
  } else if (as === "hex") {
    text = Array.from(shown.subarray(0, 4096), (b) => b.toString(16).padStart(2, "0")).join(" ");
  }
  $("value-view").textContent = text;
  $("truncated").hidden = bytes.length <= SHOWN_BYTES;
}

function newKey() {
  state.item = null; state.bytes = null;
  $("item").hidden = false;
  $("item-meta").replaceChildren();
  $("value-view").textContent = "";
  for (const id of ["edit-key", "edit-value", "edit-ttl"]) $(id).value = "";
  $("edit-type").value = "text/plain";
  $("edit-key").focus();
}

async function save(event) {
  event.preventDefault();
  const key = $("edit-key").value;
  const headers = { "Content-Type": $("edit-type").value || "application/octet-stream" };
  if (state.item && state.item.key === key) headers["If-Match"] = `"${state.item.version}"`;
  else headers["If-None-Match"] = "*";
  const ttl = $("edit-ttl").value;
  const response = await call("PUT", keyPath(key) + (ttl ? `?ttl=${encodeURIComponent(ttl)}` : ""),
                              { body: $("edit-value").value, headers });
  if (response.status === 412) {
    $("item-error").textContent = headers["If-Match"] ? "Not saved: the value changed since you opened it. Open it again to see the new value."
                                                      : "Not saved: the key already exists.";
    return;
  }
  if (!response.ok) { $("item-error").textContent = await problem(response); return; }
  say(`saved ${key}`);
  await openKey(key);
}

async function remove() {
  if (!state.item) return;
  const response = await call("DELETE", keyPath(state.item.key), { headers: { "If-Match": `"${state.item.version}"` } });
  if (response.status === 412) { $("item-error").textContent = "Not deleted: the value changed since you opened it."; return; }
  if (!response.ok) { $("item-error").textContent = await problem(response); return; }
  say(`deleted ${state.item.key}`);
  $("item").hidden = true;
  state.item = null;
  await listKeys();
}

async function increment() {
  const key = $("edit-key").value;
  const response = await call("POST", `${keyPath(key)}?increment=${encodeURIComponent($("by").value || "1")}`);
  if (!response.ok) { $("item-error").textContent = await problem(response); return; }
  say(`${key} = ${(await response.json()).value}`);
  await openKey(key);
}

// ---- live changes: the HTTP feed, long-polled ----
async function follow() {
  for (;;) {
    if (state.paused) { await new Promise((resume) => { state.resume = resume; }); continue; }
    try {
      // "latest" is resolved at once (no wait), so nothing written after the page opened is missed.
      const wait = state.token === "latest" ? "0" : "10";
      const query = new URLSearchParams({ after: state.token, prefix: $("changes-prefix").value, wait });
      const response = await call("GET", `${api.changes}?${query}`);
      if (response.status === 410) { state.token = "latest"; continue; }
      if (!response.ok) throw new Error(await problem(response));
      const page = await response.json();
      state.token = page.next;
      document.body.dataset.following = "true";
      for (const change of page.changes) {
        const li = document.createElement("li");
        const kind = String(change.event.type || "").split(".").slice(-2, -1)[0];
        li.textContent = `${change.position} ${kind} ${change.event.subject}`;
        $("change-list").prepend(li);
      }
      while ($("change-list").children.length > 200) $("change-list").lastChild.remove();
    } catch (error) {
      say(String(error.message || error), true);
      await new Promise((later) => setTimeout(later, 2000));
    }
  }
}

function togglePause() {
  state.paused = !state.paused;
  $("pause").textContent = state.paused ? "Resume" : "Pause";
  $("pause").setAttribute("aria-pressed", String(state.paused));
  if (!state.paused && state.resume) state.resume();
}

// ---- health ----
const HEALTH_FIELDS = ["phase", "instance", "keys", "lag_records", "staleness_ms", "bytes_used", "max_bytes",
                       "snapshot", "records_replayed", "restore_ms", "cold_start_ms", "records_applied", "records_skipped"];

async function health() {
  try {
    const response = await call("GET", api.health);
    const doc = await response.json();
    const rows = HEALTH_FIELDS.filter((name) => doc[name] !== undefined && doc[name] !== null)
      .map((name) => [name, typeof doc[name] === "object" ? JSON.stringify(doc[name]) : String(doc[name])]);
    if (doc.max_bytes) rows.push(["quota used", `${(100 * doc.bytes_used / doc.max_bytes).toFixed(1)} %`]);
    showDefinitions($("health-list"), rows);
    state.lag.push(Number(doc.staleness_ms) || 0);
    chart();
  } catch (error) { say(String(error.message || error), true); }
}

function chart() {
  for (const [series, id] of [[state.lag, "lag-line"], [state.latency, "latency-line"]]) {
    while (series.length > 60) series.shift(); // the last five minutes at one sample per 5 s
    const top = Math.max(1, ...series);
    const points = series.map((v, i) => `${(i * 300) / 59},${78 - (v / top) * 74}`).join(" ");
    $(id).setAttribute("points", points);
  }
}

// ---- fleet metrics (what the functions posted to OCI Monitoring; served locally by streamcache dev) ----
const LEVELS = new Set(["SnapshotAgeSeconds", "DegradedInstances", "QuotaUsedPercent", "SnapshotBytes", "TailRecordsAtStart"]);
const BARS = "▁▂▃▄▅▆▇█";

async function fleet() {
  let doc;
  try {
    const response = await fetch("/_local/metrics?minutes=60", { cache: "no-store" });
    if (!response.ok) throw new Error(String(response.status));
    doc = await response.json();
  } catch (error) {
    $("fleet-note").textContent = "Not served here: on OCI, the metrics are in the Console's Monitoring pages " +
      "(Metrics Explorer, the deployment's namespace) and the alarms in Alarm Definitions.";
    return;
  }
  const first = Math.floor(doc.now / 60) - 59;
  const streams = new Map();
  for (const p of doc.datapoints) {
    const dims = Object.entries(p.dimensions).filter(([k]) => k !== "deployment").sort()
      .map(([k, v]) => `${k}=${v}`).join(",");
    const id = `${p.name}|${dims}`;
    if (!streams.has(id)) streams.set(id, { name: p.name, dims, minutes: new Map(), n: 0, total: 0, last: 0 });
    const s = streams.get(id);
    const minute = Math.floor(p.timestamp_s / 60);
    const level = LEVELS.has(p.name) || p.name.endsWith("Max");
    const value = level ? p.value : p.value * p.count;
    s.minutes.set(minute, level ? Math.max(s.minutes.get(minute) || 0, value) : (s.minutes.get(minute) || 0) + value);
    s.n += p.count; s.total += p.value * p.count; s.last = p.value;
  }
  const rows = [...streams.values()].filter((s) => !(s.name.endsWith("Max") && streams.has(`${s.name.slice(0, -3)}|${s.dims}`)))
    .sort((a, b) => (a.name + a.dims).localeCompare(b.name + b.dims));
  const body = $("fleet-rows");
  body.replaceChildren();
  for (const s of rows) {
    const top = Math.max(1e-9, ...s.minutes.values());
    let chart = "";
    for (let m = first; m < first + 60; m++) {
      chart += s.minutes.has(m) ? BARS[Math.min(7, Math.floor((s.minutes.get(m) / top) * 7))] : "·";
    }
    const max = streams.get(`${s.name}Max|${s.dims}`);
    const figure = LEVELS.has(s.name) ? `last ${s.last}` : max ? `n ${s.n}, mean ${(s.total / s.n).toPrecision(3)}`
      : `total ${s.total}`;
    const tr = document.createElement("tr");
    for (const text of [s.name, s.dims, figure, chart]) {
      const td = document.createElement("td"); td.textContent = text; tr.append(td);
    }
    body.append(tr);
  }
  $("fleet-table").hidden = rows.length === 0;
  $("fleet-note").textContent = rows.length ? "" : "No metrics yet: each instance posts once a minute.";
  $("alarm-list").replaceChildren(...doc.alarms.map((a) => {
    const li = document.createElement("li");
    li.textContent = `${a.state} ${a.name} (${a.severity}): ${a.summary}`;
    li.className = a.state === "FIRING" ? "error" : "";
    li.dataset.alarm = a.name; li.dataset.state = a.state;
    return li;
  }));
}

// ---- start ----
async function start() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("streamcache-api-key", $("api-key").value);
    $("api-key").value = "";
    $("key-form").hidden = true;
    listKeys(); health();
  });
  $("browse").addEventListener("submit", (event) => { event.preventDefault(); listKeys(); });
  $("more").addEventListener("click", () => listKeys(true));
  $("new-key").addEventListener("click", newKey);
  $("view-as").addEventListener("change", showValue);
  $("edit").addEventListener("submit", save);
  $("delete").addEventListener("click", remove);
  $("increment").addEventListener("click", increment);
  $("pause").addEventListener("click", togglePause);
  $("changes-prefix").addEventListener("change", () => { state.token = "latest"; });
  const config = await (await fetch(api.config)).json();
  api.cache = config.cache;
  document.body.dataset.ready = "true";
  listKeys().catch((error) => say(error.message, true));
  health();
  setInterval(health, 5000);
  fleet();
  setInterval(fleet, 15000);
  follow();
}

start();
