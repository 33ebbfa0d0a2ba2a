/**
 * The console page's script: a thin view over the client library (served as it is under
 * /console/client/), so what the page shows is what an application built on the library gets.
 */
// The gateway serves this file at /console/src/console/page.js and the library at /console/client/,
// the repository's own layout, so this import resolves on disk (type check, lint) and in the page.
import { connect } from "../../client/mod.js";

const $ = (id) => document.getElementById(id);
const settings = JSON.parse($("settings")?.textContent ?? "{}");
const MAX_LOG = 500;

let client;
/** Connections welcomed since Connect, and whether the latest one resumed its session. */
let connection = 0;
let resumed = false;
/** Dropped on purpose ("Drop connection"): away until "Reconnect". */
let dropped = false;
const subscriptions = new Map();

$("client-id").value = `console-${Math.random().toString(36).slice(2, 8)}`;
$("token-field").hidden = !settings.auth;
if (!settings.ws) banner("This gateway has no WebSocket entrypoint: the console cannot connect.");

$("connect-form").addEventListener("submit", (event) => {
  event.preventDefault();
  start();
});
$("drop").addEventListener("click", () => {
  dropped = true;
  client?.disconnect();
  showState(client?.state);
});
$("reconnect").addEventListener("click", () => {
  dropped = false;
  client?.reconnect();
});
$("clear").addEventListener("click", () => $("log").replaceChildren());
$("subscribe-form").addEventListener("submit", (event) => {
  event.preventDefault();
  subscribe($("sub-endpoint").value, parseParams($("sub-params").value));
});
$("publish-form").addEventListener("submit", (event) => {
  event.preventDefault();
  publish();
});

function start() {
  client?.close();
  subscriptions.clear();
  renderSubscriptions();
  banner("");
  connection = 0;
  dropped = false;
  const clientId = $("client-id").value.trim() || undefined;
  const token = $("token").value.trim() || undefined;
  const url = new URL(settings.ws, location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  const c = client = connect({ url: url.href, clientId, token });
  c.on("state", (state) => c === client && showState(state));
  c.on(
    "connecting",
    ({ attempt }) => log("state", `connecting${attempt ? ` (attempt ${attempt + 1})` : ""}`),
  );
  c.on("connected", (welcome) => {
    connection++;
    resumed = welcome.resumed;
    showWelcome(welcome);
    const report = welcome.recovered
      ? "recovered"
      : `not recovered: ${welcome.reason ?? "?"}${welcome.lost ? ` ${JSON.stringify(welcome.lost)}` : ""}`;
    log("welcome", `${welcome.clientId}: ${welcome.resumed ? "resumed" : "new session"}, ${report}`);
  });
  c.on("disconnected", (d) => {
    const next = d.willRetry ? `retrying in ${d.retryInMs} ms` : "not reconnecting";
    log("state", `disconnected (${d.code}${d.reason ? ` ${d.reason}` : ""}), ${next}`);
  });
  c.on("takenOver", () => {
    const text =
      `Taken over: another tab or device connected as ${c.clientId}. This page does not reconnect ` +
      `by itself (it would take the session back); press Connect to take it.`;
    banner(text);
    log("taken-over", text);
  });
  c.on("error", (e) => log("error", `${e.code}: ${e.message}`));
  // Messages of endpoints bound by a publish, without a subscription here.
  c.on("message", showMessage);
  showState(c.state);
}

function subscribe(endpoint, params) {
  if (!client || !endpoint) return;
  client.subscribe(endpoint, params, showMessage).then(
    () => {
      subscriptions.set(endpoint, params);
      renderSubscriptions();
      log("receipt", `subscribed to ${endpoint}${params ? ` ${JSON.stringify(params)}` : ""}`);
    },
    (e) => log("error", `subscribe ${endpoint}: ${e.code}: ${e.message}`),
  );
}

function unsubscribe(endpoint) {
  client?.unsubscribe(endpoint).then(
    () => log("receipt", `unsubscribed from ${endpoint}`),
    (e) => log("error", `unsubscribe ${endpoint}: ${e.code}: ${e.message}`),
  );
  subscriptions.delete(endpoint);
  renderSubscriptions();
}

function publish() {
  const result = $("pub-result");
  let data;
  try {
    data = JSON.parse($("pub-data").value);
  } catch (e) {
    result.textContent = `not JSON: ${e.message}`;
    result.className = "result bad";
    return;
  }
  const endpoint = $("pub-endpoint").value;
  if (!client || !endpoint) return;
  result.textContent = client.state === "connected" ? "publishing..." : "queued until the connection is back";
  result.className = "result";
  client.publish(endpoint, data).then(
    (receipt) => {
      result.textContent = `receipt ${receipt.id}${receipt.meta ? ` ${JSON.stringify(receipt.meta)}` : ""}`;
      log("receipt", `published to ${endpoint}: ${receipt.id}`);
    },
    (e) => {
      result.textContent = `${e.code}: ${e.message}`;
      result.className = "result bad";
      log("error", `publish to ${endpoint}: ${e.code}: ${e.message}`);
    },
  );
}

function showMessage(m) {
  const li = log("message", "");
  li.dataset.endpoint = m.endpoint;
  li.dataset.id = m.id;
  li.dataset.redelivered = String(m.redelivered);
  li.dataset.resumed = String(resumed);
  li.dataset.connection = String(connection);
  const body = li.querySelector(".body");
  body.append(span("meta", `${m.endpoint} · ${m.id} · conn ${connection}`));
  if (resumed) body.append(span("badge resumed", "resumed"));
  if (m.redelivered) body.append(span("badge redelivered", "redelivered"));
  body.append(document.createElement("br"), span("data", JSON.stringify(m.data)));
}

function showState(state) {
  const el = $("state");
  el.dataset.state = state;
  el.textContent = state;
  const live = state !== "closed";
  $("drop").disabled = !live || dropped;
  $("reconnect").disabled = !live;
  $("subscribe").disabled = state !== "connected";
  $("publish").disabled = !live;
}

function showWelcome(w) {
  $("welcome").hidden = false;
  $("w-client").textContent = w.clientId;
  $("w-resumed").textContent = String(w.resumed);
  $("w-recovered").textContent = w.recovered ? "true" : `false (${w.reason ?? "?"})`;
  $("w-endpoints").textContent = w.endpoints.join(", ");
  for (const id of ["sub-endpoint", "pub-endpoint"]) {
    const select = $(id);
    const chosen = select.value;
    select.replaceChildren(...w.endpoints.map((name) => new Option(name, name, false, name === chosen)));
  }
}

function renderSubscriptions() {
  $("subscriptions").replaceChildren(...[...subscriptions].map(([endpoint, params]) => {
    const li = document.createElement("li");
    li.dataset.endpoint = endpoint;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "quiet";
    button.textContent = "Unsubscribe";
    button.addEventListener("click", () => unsubscribe(endpoint));
    li.append(`${endpoint}${params ? ` ${JSON.stringify(params)}` : ""}`, button);
    return li;
  }));
}

function banner(text) {
  $("banner").textContent = text;
  $("banner").hidden = !text;
}

function log(kind, text) {
  const list = $("log");
  const li = document.createElement("li");
  li.dataset.kind = kind;
  const time = new Date().toISOString().slice(11, 23);
  li.append(span("time", time), span("kind", kind), span("body", text));
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  list.append(li);
  while (list.childElementCount > MAX_LOG) list.firstElementChild.remove();
  if (atBottom) list.scrollTop = list.scrollHeight;
  return li;
}

function span(className, text) {
  const el = document.createElement("span");
  el.className = className;
  el.textContent = text;
  return el;
}

/** `room=lobby, a=b` as binding params; undefined when empty. */
function parseParams(text) {
  const pairs = text.split(/[,&\s]+/).filter(Boolean).map((pair) => pair.split("="));
  return pairs.length ? Object.fromEntries(pairs.map(([k, ...v]) => [k, v.join("=")])) : undefined;
}
