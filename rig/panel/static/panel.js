// vesc-rig operator panel: live station cards (server-sent events), operator actions, today's records.
// No framework and nothing loaded from elsewhere: the panel works on a factory PC without internet.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const cards = new Map(); // station name -> its card element
let snapshot = null;
let receivedAt = 0; // performance.now() when the snapshot arrived (elapsed times tick from it)
let recordsKey = null; // server_id + finished of the records list shown
let source = null;
const labelled = new Set(); // stations given a label here that the server's state may not show yet

// --- the live state -----------------------------------------------------------------------------------

function connect() {
  setConnection("connecting");
  source = new EventSource("/api/events");
  source.onmessage = (event) => {
    setConnection("live");
    render(JSON.parse(event.data));
  };
  source.onerror = () => {
    setConnection("reconnecting");
    if (source.readyState === EventSource.CLOSED) { // the browser gave up: start again
      source.close();
      setTimeout(connect, 2000);
    }
  };
}

function setConnection(how) {
  const conn = $("#conn");
  conn.dataset.conn = how;
  conn.textContent = { live: "live", connecting: "connecting…", reconnecting: "reconnecting…" }[how];
}

function render(state) {
  snapshot = state;
  for (const station of state.stations) if (station.label || station.run) labelled.delete(station.name);
  receivedAt = performance.now();
  document.title = `panel: ${state.rack}`;
  $("#rack").textContent = state.rack;
  renderCounts(state.counts);
  const holder = $("#stations");
  for (const station of state.stations) {
    if (!cards.has(station.name)) {
      const card = makeCard(station.name);
      cards.set(station.name, card);
      holder.append(card);
    }
    renderStation(cards.get(station.name), station);
  }
  const key = `${state.server_id}/${state.finished}`;
  if (key !== recordsKey) {
    recordsKey = key;
    loadRecords();
  }
}

function renderCounts(counts) {
  const box = $("#counts");
  box.replaceChildren(
    text("span", "Today:"),
    text("span", `${counts.passed}`, "n pass"), text("span", "passed", "pass"),
    text("span", `${counts.failed}`, "n fail"), text("span", "failed", "fail"),
  );
  if (counts.incomplete) box.append(text("span", `${counts.incomplete} without verdict`, "why"));
  for (const entry of counts.by_diagnosis) box.append(text("span", `${entry.count} × ${entry.diagnosis}`, "why"));
}

function makeCard(name) {
  const card = $("#station-card").content.firstElementChild.cloneNode(true);
  card.dataset.station = name;
  $(".name", card).textContent = name;
  const input = $(".label-input", card);
  $(".label-form", card).addEventListener("submit", async (event) => {
    event.preventDefault(); // a barcode scanner types the label and presses Enter, and may scan the next at once
    const label = input.value;
    input.value = "";
    labelled.add(name);
    focusNextLabel(name);
    if (!(await act(card, `/api/stations/${encodeURIComponent(name)}/label`, { label }))) {
      labelled.delete(name);
      if (!input.value) input.value = label; // refused: the operator sees what was scanned, and why
    }
  });
  $(".start", card).addEventListener("click", () => act(card, `/api/stations/${encodeURIComponent(name)}/start`));
  $(".stop", card).addEventListener("click", () => act(card, `/api/stations/${encodeURIComponent(name)}/stop`));
  $(".ack", card).addEventListener("click", () => act(card, `/api/stations/${encodeURIComponent(name)}/ack`));
  return card;
}

function focusNextLabel(after) {
  const names = [...cards.keys()];
  const start = names.indexOf(after);
  for (let i = 1; i < names.length; i++) {
    const name = names[(start + i) % names.length];
    const station = snapshot && snapshot.stations.find((s) => s.name === name);
    if (station && !station.label && !labelled.has(name)) {
      $(".label-input", cards.get(name)).focus();
      return;
    }
  }
}

const VERDICT = { idle: "IDLE", running: "RUNNING", stopping: "STOPPING", pass: "PASS", fail: "FAIL" };

function renderStation(card, station) {
  card.dataset.phase = station.phase;
  $(".hw", card).textContent = station.hw ? `hw ${station.hw} → ${station.target_fw}` : "";
  const run = station.run;
  const last = station.last;
  const stopped = station.phase === "fail" && last.stopped;
  card.dataset.stopped = stopped ? "1" : "";
  $(".verdict", card).textContent = stopped ? "STOPPED" : VERDICT[station.phase];
  if (run) {
    const step = run.step ? `step ${run.step_index} of ${run.steps_total}: ${run.step}` : "starting…";
    $(".step", card).textContent = run.stop_wanted ? `stopping at the next safe point (${step})` : step;
    const within = run.progress && run.progress.total ? run.progress.done / run.progress.total : 0;
    const overall = run.steps_total ? (Math.max(run.step_index - 1, 0) + within) / run.steps_total : 0;
    $(".bar", card).value = Math.round(overall * 1000);
    $(".bytes", card).textContent = run.progress && run.progress.total
      ? `${run.progress.phase} ${kb(run.progress.done)} of ${kb(run.progress.total)}` : "";
  }
  const board = run || (last && station.phase !== "idle" ? last : null);
  $(".f-label", card).textContent = board ? board.label || "–" : "–";
  $(".f-uid", card).textContent = (board && board.uid) || "–";
  $(".f-hw", card).textContent = (board && board.hw) || station.hw || "–";
  $(".f-fw", card).textContent = (board && board.fw) || "–";
  $(".f-record", card).textContent = board && (board.record_id || board.id) ? `#${board.record_id || board.id}` : "–";
  card.dataset.elapsed = board ? board.elapsed_s ?? "" : "";
  card.dataset.ticking = run ? "1" : "";
  showElapsed(card);
  if (station.phase === "fail") {
    const outcome = last.outcome;
    $(".what", card).textContent = outcome.what || outcome.diagnosis || "failed";
    $(".remedy", card).textContent = outcome.remedy || "";
    $(".detail-text", card).textContent = outcome.step ? `${outcome.step}: ${outcome.detail || ""}` : outcome.detail || "";
    $(".left", card).textContent = outcome.left ? `board: ${outcome.left}` : "";
  }
  $(".next-label", card).textContent = station.label ? `next board: ${station.label}` : "";
  const busy = Boolean(run);
  const waiting = Boolean(last && last.needs_ack);
  $(".start", card).hidden = busy || waiting;
  $(".start", card).disabled = !station.can_start;
  $(".stop", card).hidden = !busy;
  $(".stop", card).disabled = !busy || run.stop_wanted;
  $(".ack", card).hidden = !waiting;
  $(".notice", card).textContent = station.notice || "";
}

function showElapsed(card) {
  const base = parseFloat(card.dataset.elapsed);
  if (Number.isNaN(base)) {
    $(".f-elapsed", card).textContent = "–";
    return;
  }
  const seconds = base + (card.dataset.ticking ? (performance.now() - receivedAt) / 1000 : 0);
  $(".f-elapsed", card).textContent = duration(seconds);
}

setInterval(() => cards.forEach((card) => card.dataset.ticking && showElapsed(card)), 500);

// --- operator actions ---------------------------------------------------------------------------------

async function act(card, path, body) {
  try {
    const reply = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Rig-Panel": "1" },
      body: JSON.stringify(body || {}),
    });
    const doc = await reply.json().catch(() => ({ error: `${reply.status} ${reply.statusText}` }));
    if (!reply.ok) throw new Error(doc.error || reply.statusText);
    return doc;
  } catch (error) {
    if (card) $(".notice", card).textContent = error.message;
    else message(error.message);
    return null;
  }
}

$("#start-all").addEventListener("click", async () => {
  const done = await act(null, "/api/start-all");
  if (!done) return;
  const skipped = Object.keys(done.skipped);
  message(done.started.length ? `started: ${done.started.join(", ")}` : "no station could start",
    skipped.length ? ` (not started: ${skipped.join(", ")}; each card says why)` : "");
});

let messageTimer = null;

function message(first, more = "") {
  const box = $("#message");
  box.textContent = first + more;
  box.hidden = false;
  clearTimeout(messageTimer);
  messageTimer = setTimeout(() => { box.hidden = true; }, 15000);
}

// --- records ------------------------------------------------------------------------------------------

function filterQuery() {
  const form = new FormData($("#filters"));
  const query = new URLSearchParams();
  for (const [key, value] of form) if (value.trim()) query.set(key, value.trim());
  return query;
}

async function loadRecords() {
  const query = filterQuery();
  for (const kind of ["csv", "json"]) {
    const link = $(`#export-${kind}`);
    const q = new URLSearchParams(query);
    q.set("format", kind);
    link.href = `/api/export?${q}`;
  }
  const reply = await fetch(`/api/records?${query}`);
  const found = await reply.json();
  const body = $("#record-list tbody");
  if (!reply.ok) {
    body.replaceChildren(row([found.error || reply.statusText]));
    return;
  }
  body.replaceChildren(...found.map((r) => {
    const tr = row([`${r.id}`, clock(r.started), r.station, r.label, r.uid, r.fw, r.status, r.diagnosis || ""]);
    tr.dataset.record = r.id;
    tr.cells[6].className = `status-${r.status}`;
    tr.addEventListener("click", () => showRecord(r.id));
    return tr;
  }));
}

$("#filters").addEventListener("submit", (event) => {
  event.preventDefault();
  loadRecords();
});

async function showRecord(id) {
  const box = $("#record-detail");
  const reply = await fetch(`/api/records/${id}`);
  const r = await reply.json();
  box.hidden = false;
  if (!reply.ok) {
    box.replaceChildren(text("p", r.error));
    return;
  }
  const head = text("h3", `Record #${r.id}: ${r.label || "no label"} on ${r.station}, ${r.status}`);
  const parts = [head, text("p", `UID ${r.uid || "–"}, hardware ${r.hw || "–"}, firmware ${r.fw || "–"}, run ${r.run_id}`)];
  if (r.outcome.what) parts.push(text("p", `${r.outcome.what} ${r.outcome.remedy || ""}`, "what"));
  parts.push(text("h4", "Step log"), table(["step or check", "value", "limits", "result", "at"], 1,
    r.checks.map((c) => ({
      cells: [c.name, `${c.value ?? ""} ${c.unit}`.trim(), limits(c), c.passed ? "PASS" : "FAIL", clock(c.at)],
      failed: !c.passed,
    }))));
  if (r.trace) {
    parts.push(text("h4", `Trace excerpt: the last ${r.trace.lines} lines on the port, decoded (firmware ${r.trace.fw} command ids)`));
    if (r.trace.error) parts.push(text("p", r.trace.error));
    parts.push(table(["time", "dir", "frame", "bytes", "", "data"], 5, r.trace.events.map((e) => ({
      cells: [e.t === null ? "" : e.t.toFixed(3), e.dir, e.what, `${e.bytes}`, e.note, e.data],
      failed: e.what === "garbage" || e.note === "CRC bad",
    }))));
  }
  box.replaceChildren(...parts);
  box.dataset.record = r.id;
}

// --- small helpers ------------------------------------------------------------------------------------

function text(tag, content, className) {
  const node = document.createElement(tag);
  node.textContent = content;
  if (className) node.className = className;
  return node;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) tr.append(text("td", cell ?? ""));
  return tr;
}

function table(headers, mono, rows) {
  const node = document.createElement("table");
  const head = document.createElement("tr");
  headers.forEach((h) => head.append(text("th", h)));
  node.append(head);
  for (const r of rows) {
    const tr = row(r.cells);
    tr.cells[mono].className = "mono";
    if (r.failed) tr.className = "failed";
    node.append(tr);
  }
  return node;
}

function limits(check) {
  if (check.low === null && check.high === null) return "";
  return `${check.low ?? ""}..${check.high ?? ""}`;
}

function kb(bytes) {
  return `${(bytes / 1024).toFixed(0)} KB`;
}

function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

function clock(iso) {
  return iso ? new Date(iso).toLocaleTimeString() : "";
}

connect();
