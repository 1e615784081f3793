// dashboard.js: the operator dashboard. It reads only admin endpoints of the
// node that served it (GET /admin/cluster, /admin/stats, /admin/users/{id})
// and the WebSocket, with the token the operator pasted (kept in this tab's
// sessionStorage, sent as a Bearer header).

import { PresenceClient } from "/client/presence.js";
import { Series, drawChart, fmtNum } from "/admin/charts.js";

const TOKEN_KEY = "presence.admin.token";
const REFRESH_MS = 2000;
const WINDOW_MS = 10 * 60 * 1000;

const $ = (sel) => document.querySelector(sel);

const ui = {
  signin: $("#signin"),
  signinForm: $("#signin-form"),
  token: $("#token"),
  signinError: $("#signin-error"),
  app: $("#app"),
  signout: $("#signout"),
  nodeName: $("#node-name"),
  refreshState: $("#refresh-state"),
  members: $("#members tbody"),
  memberCount: $("#member-count"),
  clusterError: $("#cluster-error"),
  lookupForm: $("#lookup-form"),
  lookupID: $("#lookup-id"),
  lookupError: $("#lookup-error"),
  lookupResult: $("#lookup-result"),
  liveForm: $("#live-form"),
  liveIDs: $("#live-ids"),
  liveClear: $("#live-clear"),
  liveError: $("#live-error"),
  liveState: $("#live-state"),
  liveRows: $("#live-table tbody"),
};

const charts = {
  delay: { fig: $("#chart-delay"), series: new Series(WINDOW_MS) },
  flaps: { fig: $("#chart-flaps"), series: new Series(WINDOW_MS) },
  ghosts: { fig: $("#chart-ghosts"), series: new Series(WINDOW_MS) },
};

let timer = 0;
let prevStats = null; // the previous /admin/stats answer, for rates
let live = null; // the PresenceClient of the live view

// ---------------------------------------------------------------- HTTP

class HTTPError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function getJSON(path) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  let resp;
  try {
    resp = await fetch(path, { headers: { Authorization: `Bearer ${token}` }, cache: "no-store" });
  } catch (e) {
    throw new HTTPError(0, `Cannot reach the node: ${e.message}`);
  }
  let body = null;
  try {
    body = await resp.json();
  } catch {
    // a body that is not JSON: the status says enough
  }
  if (!resp.ok) throw new HTTPError(resp.status, (body && body.detail) || resp.statusText);
  return body;
}

function explain(err) {
  switch (err.status) {
    case 401:
      return `The token was refused: ${err.message}. Paste a valid, unexpired token.`;
    case 403:
      return `This token is valid but not an admin token: ${err.message}.`;
    case 0:
      return err.message;
  }
  return `The node answered ${err.status}: ${err.message}`;
}

// ---------------------------------------------------------------- sign in

async function signIn(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  try {
    const cluster = await getJSON("/admin/cluster");
    showApp(cluster);
  } catch (err) {
    sessionStorage.removeItem(TOKEN_KEY);
    showSignIn(explain(err));
  }
}

function showSignIn(error) {
  clearTimeout(timer);
  if (live) live.close();
  live = null;
  ui.app.hidden = true;
  ui.signout.hidden = true;
  ui.signin.hidden = false;
  ui.nodeName.textContent = "";
  ui.refreshState.textContent = "";
  ui.signinError.hidden = !error;
  ui.signinError.textContent = error || "";
}

function showApp(cluster) {
  ui.signin.hidden = true;
  ui.signinError.hidden = true;
  ui.app.hidden = false;
  ui.signout.hidden = false;
  ui.token.value = "";
  renderCluster(cluster, null);
  startLive();
  refresh();
}

ui.signinForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const token = ui.token.value.trim().replace(/^Bearer\s+/i, "");
  if (token) signIn(token);
});

ui.signout.addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  showSignIn("");
});

// ---------------------------------------------------------------- cluster

async function refresh() {
  clearTimeout(timer);
  try {
    const [cluster, stats] = await Promise.all([getJSON("/admin/cluster"), getJSON("/admin/stats")]);
    renderCluster(cluster, stats);
    sampleSLIs(stats);
    ui.clusterError.hidden = true;
    ui.refreshState.textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    if (err.status === 401 || err.status === 403) {
      sessionStorage.removeItem(TOKEN_KEY);
      showSignIn(explain(err));
      return;
    }
    ui.clusterError.hidden = false;
    ui.clusterError.textContent = explain(err);
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

/** Per-second rate of counter key of member name between two samples. */
function rate(stats, name, key) {
  if (!prevStats || !stats) return null;
  const prev = prevStats.members.find((m) => m.name === name);
  const cur = stats.members.find((m) => m.name === name);
  if (!prev || !cur || prev.error || cur.error) return null;
  const dt = (Date.parse(stats.time) - Date.parse(prevStats.time)) / 1000;
  if (!(dt > 0) || cur[key] < prev[key]) return null; // restarted
  return (cur[key] - prev[key]) / dt;
}

function renderCluster(cluster, stats) {
  ui.nodeName.textContent = `node ${cluster.node}${cluster.standalone ? " (standalone)" : ""}, view epoch ${cluster.epoch}`;
  ui.memberCount.textContent = `(${cluster.members.length})`;
  const byName = new Map(stats ? stats.members.map((m) => [m.name, m]) : []);
  const rows = cluster.members.map((m) => {
    const s = byName.get(m.name);
    const tr = document.createElement("tr");
    tr.dataset.member = m.name;
    tr.dataset.node = m.node_name;
    if (m.self) tr.className = "self";
    const state = m.draining ? "draining" : m.status;
    const cpu = s && !s.error ? rate(stats, m.name, "cpu_seconds_total") : null;
    cells(tr, [
      m.name,
      m.node_name,
      [state, `state-${state}`],
      m.owns_users ? "yes" : "no",
      m.http_addr,
      m.gossip_addr,
      m.remote_addr,
      num(s && !s.error ? s.sessions_open : null),
      m.actors_hosted === null ? ["unreachable", "unreachable", m.error] : num(m.actors_hosted),
      num(rate(stats, m.name, "http_requests_total")),
      num(rate(stats, m.name, "http_client_errors_total")),
      num(rate(stats, m.name, "http_server_errors_total")),
      num(cpu === null ? null : cpu * 100, "%"),
    ]);
    return tr;
  });
  ui.members.replaceChildren(...rows);
  if (stats) prevStats = stats;
}

function num(v, unit = "") {
  return [v === null || v === undefined ? "–" : fmtNum(v) + unit, "num"];
}

function cells(tr, values) {
  for (const v of values) {
    const td = document.createElement("td");
    if (Array.isArray(v)) {
      td.textContent = v[0];
      td.className = v[1];
      if (v[2]) td.title = v[2];
    } else {
      td.textContent = v ?? "";
    }
    tr.appendChild(td);
  }
}

// ---------------------------------------------------------------- SLIs

let prevTotals = null;

function sampleSLIs(stats) {
  const t = Date.parse(stats.time);
  const tot = { count: 0, sum: 0, flaps: 0, ghosts: 0 };
  for (const m of stats.members) {
    if (m.error) continue;
    tot.count += m.offline_push_delay_count;
    tot.sum += m.offline_push_delay_sum_seconds;
    tot.flaps += m.flaps_suppressed_total;
    tot.ghosts += m.ghosts_total;
  }
  let delay = null;
  let flaps = null;
  if (prevTotals && t > prevTotals.t) {
    const dc = tot.count - prevTotals.count;
    delay = dc > 0 ? (tot.sum - prevTotals.sum) / dc : null;
    flaps = Math.max(0, ((tot.flaps - prevTotals.flaps) / (t - prevTotals.t)) * 60000);
  }
  prevTotals = { ...tot, t };
  charts.delay.series.push(t, delay);
  charts.flaps.series.push(t, flaps);
  charts.ghosts.series.push(t, tot.ghosts);
  const mean = tot.count ? tot.sum / tot.count : null;
  drawChart(charts.delay.fig, charts.delay.series, `mean ${fmtNum(mean)} s over ${tot.count}`, "no offline transitions in the window");
  drawChart(charts.flaps.fig, charts.flaps.series, `${tot.flaps} total`);
  drawChart(charts.ghosts.fig, charts.ghosts.series, `${tot.ghosts}`);
}

// ---------------------------------------------------------------- user lookup

ui.lookupForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  const id = ui.lookupID.value.trim();
  ui.lookupError.hidden = true;
  ui.lookupResult.hidden = true;
  try {
    const u = await getJSON(`/admin/users/${encodeURIComponent(id)}`);
    const fields = [
      ["User", `${u.user_id} ${u.username ? "(" + u.username + ")" : ""}`],
      ["Online", u.is_online ? "yes" : "no"],
      ["Busy", u.is_busy ? `yes${u.busy_until ? " until " + u.busy_until : ""}` : "no"],
      ["Last seen", u.last_seen || "never"],
      ["Version", String(u.version)],
      ["Owner", u.owner],
      ["Watching hubs", String(u.watchers)],
      ["Sessions", String(u.sessions)],
      ["Visibility", visibilityText(u.visibility)],
      ["Created", u.created_at || "–"],
      ["Updated", u.updated_at || "–"],
    ];
    ui.lookupResult.replaceChildren(
      ...fields.flatMap(([k, v]) => {
        const dt = document.createElement("dt");
        dt.textContent = k;
        const dd = document.createElement("dd");
        dd.textContent = v;
        dd.dataset.field = k.toLowerCase().replace(/\s+/g, "_");
        return [dt, dd];
      }),
    );
    ui.lookupResult.hidden = false;
  } catch (err) {
    ui.lookupError.hidden = false;
    ui.lookupError.textContent = err.status === 404 ? `User ${id} has no presence record.` : explain(err);
  }
});

// visibilityText is a user's visibility setting in one line.
function visibilityText(v) {
  if (!v) return "–";
  const allow = v.allow.length ? `, allow ${v.allow.join(", ")}` : "";
  return `presence ${v.presence}, last_seen ${v.last_seen}${allow}`;
}

// ---------------------------------------------------------------- live view

function startLive() {
  if (live) live.close();
  live = new PresenceClient({ token: () => sessionStorage.getItem(TOKEN_KEY) });
  live.addEventListener("state", (e) => {
    ui.liveState.textContent = e.detail.state;
    ui.liveState.className = `badge ${e.detail.state}`;
  });
  live.addEventListener("update", (e) => renderLive(e.detail));
  live.addEventListener("error", (e) => {
    ui.liveError.hidden = false;
    ui.liveError.textContent = e.detail.detail || String(e.detail.error);
  });
  live.connect();
}

function liveRow(id) {
  let tr = ui.liveRows.querySelector(`tr[data-user="${id}"]`);
  if (!tr) {
    tr = document.createElement("tr");
    tr.dataset.user = String(id);
    cells(tr, [String(id), "", "…", "", "", "", ["", "num"]]);
    ui.liveRows.appendChild(tr);
  }
  return tr;
}

function renderLive(p) {
  if (!live || !live.subscriptions.includes(p.user_id)) return; // the admin's own updates
  const tr = liveRow(p.user_id);
  const td = tr.children;
  td[1].textContent = p.username;
  td[2].textContent = p.is_online ? "online" : "offline";
  td[2].className = p.is_online ? "on" : "off";
  td[3].textContent = p.is_busy ? "busy" : "–";
  td[3].className = p.is_busy ? "busy" : "";
  setTime(td[4], p.busy_until, "–");
  setTime(td[5], p.last_seen, "never");
  td[6].textContent = String(p.version);
  tr.dataset.online = String(p.is_online);
  tr.dataset.busy = String(p.is_busy);
  tr.dataset.version = String(p.version);
  tr.classList.remove("flash");
  void tr.offsetWidth; // restart the animation
  tr.classList.add("flash");
}

/** Shows an RFC 3339 time as a local clock time, the full value as a tooltip. */
function setTime(td, iso, none) {
  td.textContent = iso ? new Date(iso).toLocaleTimeString() : none;
  td.title = iso || "";
}

ui.liveForm.addEventListener("submit", (e) => {
  e.preventDefault();
  ui.liveError.hidden = true;
  const ids = ui.liveIDs.value
    .split(/[\s,]+/)
    .map(Number)
    .filter((n) => Number.isSafeInteger(n) && n > 0);
  if (!ids.length) {
    ui.liveError.hidden = false;
    ui.liveError.textContent = "Enter positive integer user ids, separated by commas.";
    return;
  }
  ids.forEach(liveRow);
  live.subscribe(ids);
  ui.liveIDs.value = "";
});

ui.liveClear.addEventListener("click", () => {
  live.unsubscribe(live.subscriptions);
  ui.liveRows.replaceChildren();
});

// ---------------------------------------------------------------- start

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) signIn(saved);
else showSignIn("");
