/**
 * The operator's page (`/admin/`, on the admin listener): a view over the admin API with the
 * token the operator logs in with (kept in this tab's sessionStorage, sent as a bearer token).
 * No build step and no library: the charts are SVG polylines drawn here.
 */
const $ = (id) => document.getElementById(id);
const POLL_MS = 2000;
const POINTS = 60;
let token = sessionStorage.getItem("admin-token") ?? "";
let self = "";
let drainTime = 0;
/** Each node's last announcement, with the message rates worked out from the one before. */
let announced = new Map();
const series = { in: [], out: [] };
let cursor = null;
let timer;

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: {
      Authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (response.status === 401) {
    logout("That token is not one of admin.tokens.");
    throw new Error("unauthenticated");
  }
  return { status: response.status, body: answer };
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text ?? "–";
  if (className) td.className = className;
  return td;
}

const time = (ms) => (ms ? new Date(ms).toLocaleTimeString() : "–");

async function refresh() {
  try {
    const [nodes, stats] = await Promise.all([api("GET", "/admin/nodes"), api("GET", "/admin/stats")]);
    self = nodes.body.self;
    $("self").textContent = `node ${self}`;
    const body = $("nodes").tBodies[0];
    body.replaceChildren();
    for (const node of nodes.body.nodes) {
      const row = body.insertRow();
      row.dataset.node = node.id;
      cell(row, node.id + (node.id === self ? " (this one)" : ""));
      cell(row, node.address);
      cell(row, node.runtime);
      cell(row, node.version);
      cell(row, String(node.connected));
      cell(row, time(node.startedAt));
      cell(row, node.draining ? "draining" : "up", node.draining ? "state-draining" : "state-connected");
    }
    const s = stats.body;
    $("s-connected").textContent = String(s.sessions.connected);
    $("s-disconnected").textContent = String(s.sessions.disconnected);
    $("s-here").textContent = String(s.connections);
    // Bindings and message rates of every node, from what each announces (every third of a lease).
    const bindings = {};
    const seen = new Map();
    for (const node of nodes.body.nodes) {
      for (const [endpoint, count] of Object.entries(node.bindings ?? {})) {
        bindings[endpoint] = (bindings[endpoint] ?? 0) + count;
      }
      const last = announced.get(node.id);
      let rates = last?.rates ?? { in: 0, out: 0 };
      if (last && node.seenAt > last.seenAt) {
        const seconds = (node.seenAt - last.seenAt) / 1000;
        rates = {
          in: Math.max(0, (node.messagesIn ?? 0) - (last.messagesIn ?? 0)) / seconds,
          out: Math.max(0, (node.messagesOut ?? 0) - (last.messagesOut ?? 0)) / seconds,
        };
      }
      seen.set(node.id, last && node.seenAt === last.seenAt ? last : { ...node, rates });
    }
    announced = seen;
    const body2 = $("bindings").tBodies[0];
    body2.replaceChildren();
    for (const [endpoint, n] of Object.entries(bindings)) {
      const row = body2.insertRow();
      cell(row, endpoint);
      cell(row, String(n));
    }
    let rateIn = 0;
    let rateOut = 0;
    for (const { rates } of announced.values()) {
      rateIn += rates.in;
      rateOut += rates.out;
    }
    plot("in", rateIn);
    plot("out", rateOut);
    $("status").textContent = s.draining ? "draining" : `updated ${new Date().toLocaleTimeString()}`;
    $("drain").disabled = s.draining;
  } catch (error) {
    $("status").textContent = `unreachable: ${error.message}`;
  }
}

function plot(which, rate) {
  const points = series[which];
  points.push(Math.max(0, rate));
  if (points.length > POINTS) points.shift();
  const top = Math.max(1, ...points);
  const svg = $(`chart-${which}`);
  const line = svg.querySelector("polyline") ??
    svg.appendChild(document.createElementNS("http://www.w3.org/2000/svg", "polyline"));
  line.setAttribute(
    "points",
    points.map((p, i) => `${(i * 300) / (POINTS - 1)},${78 - (p / top) * 74}`).join(" "),
  );
  $(`rate-${which}`).textContent = `${rate.toFixed(1)} / s (peak ${top.toFixed(1)})`;
}

async function search(more = false) {
  const body = $("sessions").tBodies[0];
  if (!more) {
    body.replaceChildren();
    cursor = null;
  }
  const clientId = $("q-client").value.trim();
  let sessions = [];
  if (clientId) {
    const found = await api("GET", `/admin/sessions/${encodeURIComponent(clientId)}`);
    sessions = found.status === 200 ? [found.body] : [];
    cursor = null;
  } else {
    const query = new URLSearchParams({ limit: "50" });
    for (
      const [key, id] of [["state", "q-state"], ["subject", "q-subject"], ["node", "q-node"], [
        "endpoint",
        "q-endpoint",
      ]]
    ) {
      const value = $(id).value.trim();
      if (value) query.set(key, value);
    }
    if (more && cursor) query.set("cursor", cursor);
    const page = await api("GET", `/admin/sessions?${query}`);
    sessions = page.body.sessions ?? [];
    cursor = page.body.cursor;
  }
  for (const session of sessions) addRow(body, session);
  $("more").hidden = !cursor;
  say(body.rows.length === 0 ? "No session matches." : `${body.rows.length} sessions shown.`);
}

function addRow(body, session) {
  const row = body.insertRow();
  row.dataset.client = session.clientId;
  cell(row, session.clientId);
  cell(row, session.state, `state-${session.state}`);
  cell(row, String(session.epoch));
  cell(row, session.subject);
  cell(row, session.node);
  // In-flight counts come with a session looked up on the node that holds its connection.
  const inFlight = session.connection?.inFlight ?? {};
  cell(
    row,
    session.subscriptions.map((s) =>
      `${s.endpoint}${Object.keys(s.params).length ? ` ${JSON.stringify(s.params)}` : ""}${
        inFlight[s.endpoint] ? ` (${inFlight[s.endpoint]} in flight)` : ""
      }`
    ).join(", ") || "none",
  );
  cell(row, time(session.deadline));
  const actions = cell(row, "");
  const disconnect = button("Disconnect", "small", async () => {
    const done = await api("POST", `/admin/sessions/${encodeURIComponent(session.clientId)}/disconnect`);
    say(`${session.clientId}: ${done.body.outcome ?? done.body.message}`);
    setTimeout(() => void search(), 500);
  });
  disconnect.disabled = session.state !== "connected";
  const end = button("End", "small danger", async () => {
    if (end.dataset.armed !== "yes") {
      end.dataset.armed = "yes";
      end.textContent = "Confirm end";
      return;
    }
    const done = await api("DELETE", `/admin/sessions/${encodeURIComponent(session.clientId)}`);
    say(`${session.clientId}: ${done.body.outcome ?? done.body.message}`);
    setTimeout(() => void search(), 500);
  });
  actions.append(disconnect, " ", end);
}

function button(text, className, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.className = className;
  b.addEventListener("click", () => void onClick());
  return b;
}

function say(text) {
  $("message").hidden = false;
  $("message").textContent = text;
}

function logout(why) {
  token = "";
  sessionStorage.removeItem("admin-token");
  clearInterval(timer);
  $("main").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").hidden = !why;
  $("login-error").textContent = why ?? "";
}

async function start() {
  const check = await api("GET", "/admin/nodes").catch(() => undefined);
  if (!check || check.status !== 200) return;
  $("login").hidden = true;
  $("main").hidden = false;
  $("logout").hidden = false;
  await refresh();
  timer = setInterval(() => void refresh(), POLL_MS);
  void search();
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("token").value.trim();
  sessionStorage.setItem("admin-token", token);
  void start();
});
$("logout").addEventListener("click", () => logout());
$("search").addEventListener("submit", (event) => {
  event.preventDefault();
  void search();
});
$("more").addEventListener("click", () => void search(true));
$("drain").addEventListener("click", () => {
  $("drain-node").textContent = self;
  $("drain-time").textContent = drainTime ? `${drainTime / 1000} s` : "admin.drain_time";
  $("drain-confirm").hidden = false;
});
$("drain-no").addEventListener("click", () => ($("drain-confirm").hidden = true));
$("drain-yes").addEventListener("click", async () => {
  $("drain-confirm").hidden = true;
  const done = await api("POST", "/admin/drain");
  drainTime = done.body.drain_time_ms ?? 0;
  say(`Draining ${done.body.node} over ${drainTime / 1000} s; it exits once its clients moved away.`);
  await refresh();
});

if (token) void start();
