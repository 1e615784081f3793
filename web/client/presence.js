// presence.js: the browser client of the presence cluster, as an ES module.
// Every node serves it at /client/presence.js (any origin may import it).
//
//   import { PresenceClient } from "https://presence.example.com/client/presence.js";
//   const client = new PresenceClient({
//     urls: ["wss://presence.example.com/ws/presence"],
//     token: () => fetch("/my-token").then((r) => r.text()),
//   });
//   client.addEventListener("update", (e) => render(e.detail));
//   client.subscribe([123, 456]);
//   client.connect();
//
// What it does for you:
// - reconnects with jittered exponential backoff; at once, to the next URL of
//   the list, when a node drains (close code 1012); backs off on 1013;
// - re-subscribes after every reconnect (the server then sends the current
//   presence of each user, so nothing changed while away is missed);
// - keeps the highest `version` seen per user and drops any update that is
//   not above it (a stale or replayed update never reaches your handler);
// - sends WebSocket heartbeats, at the interval the server advises when it
//   gives one (`heartbeat_interval_seconds`);
// - asks the token function again before the token expires and refreshes
//   the session in place ({"type": "refresh"}), and after a 4001 close.
//
// Events (it is an EventTarget):
// - "update": detail is the presence record {user_id, username, is_online,
//   is_busy, busy_until, last_seen, version}, only when its version is new;
// - "state": detail is {state, url, code, reason, attempt, delay}; state is
//   "connecting", "open", "reconnecting" or "closed";
// - "error": detail is {detail} for an error frame, or {error} for a failure
//   to get a token.

/** Close codes the client acts on. */
export const CloseCodes = Object.freeze({
  NORMAL: 1000,
  SERVICE_RESTART: 1012, // node draining: reconnect at once, elsewhere
  TRY_AGAIN_LATER: 1013, // overloaded: back off
  TOKEN_EXPIRED: 4001, // session outlived its token: reconnect with a fresh one
  DISCONNECTED: 4003, // an operator disconnected the user: stay closed
});

const DEFAULTS = Object.freeze({
  minBackoffMs: 250,
  maxBackoffMs: 30000,
  heartbeatSeconds: 25,
  refreshBeforeSeconds: 30,
});

/**
 * A reconnecting, version-filtering subscription to users' presence.
 */
export class PresenceClient extends EventTarget {
  /**
   * @param {object} opts
   * @param {string|string[]} [opts.urls] WebSocket URLs of nodes
   *   (ws[s]://host/ws/presence); default: this page's origin.
   * @param {string|function():(string|Promise<string>)} opts.token a JWT, or
   *   a function returning one (called at every (re)connect and refresh).
   * @param {number} [opts.minBackoffMs] first reconnect delay (250 ms).
   * @param {number} [opts.maxBackoffMs] largest reconnect delay (30 s).
   * @param {number} [opts.heartbeatSeconds] heartbeat frame interval until
   *   the server advises one (25 s; 0 sends none).
   * @param {function} [opts.WebSocket] the WebSocket constructor (tests).
   */
  constructor(opts = {}) {
    super();
    if (!opts.token) throw new TypeError("PresenceClient: a token (or a function returning one) is required");
    this.opts = { ...DEFAULTS, ...opts };
    this.urls = normalizeURLs(opts.urls);
    this.urlIndex = 0;
    this.subs = new Set();
    this.versions = new Map(); // user id -> highest version seen
    this.records = new Map(); // user id -> latest record
    this.ws = null;
    this.state = "closed";
    this.attempt = 0;
    this.stopped = true;
    this.timers = { reconnect: 0, heartbeat: 0, refresh: 0 };
    this.heartbeatSeconds = this.opts.heartbeatSeconds;
    this.WS = opts.WebSocket || globalThis.WebSocket;
  }

  /** Opens the connection (and keeps it open until close()). */
  connect() {
    if (!this.stopped) return;
    this.stopped = false;
    this.open();
  }

  /** Closes the connection for good; subscriptions are kept for connect(). */
  close() {
    this.stopped = true;
    this.clearTimers();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(CloseCodes.NORMAL, "client closed");
    }
    this.setState("closed", {});
  }

  /** Adds users to the subscription. */
  subscribe(ids) {
    const fresh = toIDs(ids).filter((id) => !this.subs.has(id));
    fresh.forEach((id) => this.subs.add(id));
    if (fresh.length) this.send({ type: "subscribe", user_ids: fresh });
  }

  /** Removes users from the subscription and forgets what was seen of them. */
  unsubscribe(ids) {
    const gone = toIDs(ids).filter((id) => this.subs.has(id));
    gone.forEach((id) => {
      this.subs.delete(id);
      this.versions.delete(id);
      this.records.delete(id);
    });
    if (gone.length) this.send({ type: "unsubscribe", user_ids: gone });
  }

  /** The latest record of a user, or undefined. */
  get(id) {
    return this.records.get(Number(id));
  }

  /** The user ids subscribed to. */
  get subscriptions() {
    return [...this.subs];
  }

  // ---------------------------------------------------------------- connection

  async open() {
    this.clearTimers();
    const url = this.urls[this.urlIndex % this.urls.length];
    this.setState(this.attempt === 0 ? "connecting" : "reconnecting", { url, attempt: this.attempt });
    let token;
    try {
      token = await this.token();
    } catch (error) {
      this.emit("error", { error });
      this.retry({ code: 0, reason: "no token" }, false);
      return;
    }
    if (this.stopped) return;
    const u = new URL(url);
    u.searchParams.set("token", token);
    const ws = new this.WS(u.toString());
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.attempt = 0;
      this.resubscribe();
      this.setState("open", { url });
      this.armHeartbeat();
      this.armRefresh(token);
    };
    ws.onmessage = (ev) => {
      if (this.ws === ws) this.handleFrame(ev.data);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.clearTimers();
      this.onClose(ev.code, ev.reason);
    };
  }

  onClose(code, reason) {
    if (this.stopped) return;
    if (code === CloseCodes.DISCONNECTED) {
      this.stopped = true;
      this.setState("closed", { code, reason });
      return;
    }
    // A draining node or an expired token: reconnect at once (the token
    // function is asked again). A drained node goes to the next URL.
    const atOnce = code === CloseCodes.SERVICE_RESTART || code === CloseCodes.TOKEN_EXPIRED;
    if (code === CloseCodes.SERVICE_RESTART || this.attempt > 0) this.urlIndex++;
    this.retry({ code, reason }, atOnce);
  }

  retry(why, atOnce) {
    if (this.stopped) return;
    const delay = atOnce && this.attempt === 0 ? 0 : this.backoff();
    this.attempt++;
    const next = this.urls[this.urlIndex % this.urls.length];
    this.setState("reconnecting", { ...why, next, attempt: this.attempt, delay });
    this.timers.reconnect = setTimeout(() => this.open(), delay);
  }

  /** Full-jitter exponential backoff: random in [min, min * 2^attempt], capped. */
  backoff() {
    const { minBackoffMs, maxBackoffMs } = this.opts;
    const ceil = Math.min(maxBackoffMs, minBackoffMs * 2 ** Math.min(this.attempt, 20));
    return Math.round(minBackoffMs + Math.random() * Math.max(0, ceil - minBackoffMs));
  }

  async token() {
    const t = this.opts.token;
    const v = typeof t === "function" ? await t() : t;
    if (!v) throw new Error("the token function returned nothing");
    return String(v);
  }

  // ---------------------------------------------------------------- frames

  /** Handles one server frame (a string of JSON). Exposed for tests. */
  handleFrame(data) {
    let f;
    try {
      f = JSON.parse(data);
    } catch {
      return;
    }
    if (f && typeof f.heartbeat_interval_seconds === "number") this.adviseHeartbeat(f.heartbeat_interval_seconds);
    switch (f && f.type) {
      case "presence_update":
        this.accept(f.data);
        break;
      case "error":
        this.emit("error", { detail: f.detail });
        break;
      case "refreshed":
        this.emit("refreshed", { expires_at: f.expires_at });
        break;
    }
  }

  /** Applies an update unless its version is not above the last one seen. */
  accept(rec) {
    if (!rec || typeof rec.user_id !== "number") return false;
    const last = this.versions.get(rec.user_id);
    if (last !== undefined && !(rec.version > last)) return false;
    this.versions.set(rec.user_id, rec.version);
    this.records.set(rec.user_id, rec);
    this.emit("update", rec);
    return true;
  }

  send(frame) {
    if (this.ws && this.ws.readyState === 1) this.ws.send(JSON.stringify(frame));
    // Not open: resubscribe() sends the subscriptions once it is.
  }

  /** Subscribes a fresh connection to every user, in frames of 200 ids
   * (a URL list could outgrow the request head limit). */
  resubscribe() {
    const ids = [...this.subs];
    for (let i = 0; i < ids.length; i += 200) this.send({ type: "subscribe", user_ids: ids.slice(i, i + 200) });
  }

  // ---------------------------------------------------------------- timers

  adviseHeartbeat(seconds) {
    if (!(seconds > 0) || seconds === this.heartbeatSeconds) return;
    this.heartbeatSeconds = seconds;
    if (this.state === "open") this.armHeartbeat();
  }

  armHeartbeat() {
    clearInterval(this.timers.heartbeat);
    if (this.heartbeatSeconds > 0) {
      this.timers.heartbeat = setInterval(() => this.send({ type: "heartbeat" }), this.heartbeatSeconds * 1000);
    }
  }

  /** With a token function, refreshes the session before the token expires. */
  armRefresh(token) {
    clearTimeout(this.timers.refresh);
    if (typeof this.opts.token !== "function") return;
    const exp = tokenExpiry(token);
    if (!exp) return;
    const wait = Math.max(1000, exp - Date.now() - this.opts.refreshBeforeSeconds * 1000);
    this.timers.refresh = setTimeout(async () => {
      try {
        const fresh = await this.token();
        this.send({ type: "refresh", token: fresh });
        this.armRefresh(fresh);
      } catch (error) {
        this.emit("error", { error });
      }
    }, wait);
  }

  clearTimers() {
    clearTimeout(this.timers.reconnect);
    clearInterval(this.timers.heartbeat);
    clearTimeout(this.timers.refresh);
  }

  setState(state, detail) {
    this.state = state;
    this.emit("state", { state, ...detail });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/** The URL list: given ones, or this page's origin's /ws/presence. */
function normalizeURLs(urls) {
  if (typeof urls === "string") urls = [urls];
  if (Array.isArray(urls) && urls.length) return urls.map(String);
  if (globalThis.location) {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    return [`${proto}//${location.host}/ws/presence`];
  }
  throw new TypeError("PresenceClient: urls is required outside a page");
}

function toIDs(ids) {
  return (Array.isArray(ids) ? ids : [ids]).map(Number).filter((id) => Number.isSafeInteger(id) && id > 0);
}

/** The exp claim of a JWT, in ms since the epoch, or 0. */
function tokenExpiry(token) {
  try {
    const b64 = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const exp = JSON.parse(atob(b64)).exp;
    return typeof exp === "number" ? exp * 1000 : 0;
  } catch {
    return 0;
  }
}
