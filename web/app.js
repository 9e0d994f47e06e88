// The phone page: one switch for the board's LED, over MQTT on a WebSocket
// (MQTT.js's browser build, served beside this file as mqtt.min.js).
//
// It shows only what the board has reported: the LED's state comes from the
// retained <topic>/state, the board's presence from the retained <topic>/status
// ("online", or the broker's last will "offline"). A tap publishes "on" or "off"
// to <topic> at QoS 1 and the switch shows "pending" until the board's report
// confirms it; a board that is offline gets the command when it comes back
// (it keeps a persistent session on the broker).
//
// Query string: ?prefix=kitchen  ?topic=led  ?broker=ws://host:9001/
// (defaults: no prefix, "led", the server this page came from).
"use strict";
(function () {
  var query = new URLSearchParams(location.search);
  var prefix = query.get("prefix") || "";
  var topic = query.get("topic") || "led";
  var base = (prefix ? prefix + "/" : "") + topic;
  var brokerUrl = query.get("broker") || (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/";
  var credentialsKey = "led-page-login " + brokerUrl;

  var el = function (id) { return document.getElementById(id); };
  var sw = el("switch");

  /** What the page knows. led and presence only ever come from the board's own reports. */
  var view = {
    conn: "connecting", // connecting | connected | reconnecting | refused
    presence: "unknown", // online | offline | unknown
    led: "unknown", // on | off | unknown
    pending: null, // "on" | "off" while a command waits for the board's confirmation
    refusal: "",
  };

  function render() {
    var shown = view.pending || view.led;
    sw.dataset.state = view.led;
    sw.setAttribute("aria-checked", view.led === "on" ? "true" : view.led === "off" ? "false" : "mixed");
    if (view.pending) {
      sw.dataset.pending = view.pending;
      sw.setAttribute("aria-busy", "true");
    } else {
      delete sw.dataset.pending;
      sw.removeAttribute("aria-busy");
    }
    if (view.conn !== "connected") sw.dataset.stale = "";
    else delete sw.dataset.stale;
    el("switch-text").textContent = view.pending ? "turning " + view.pending + "…" : shown === "unknown" ? "unknown" : shown;
    sw.setAttribute("aria-label", "LED " + (view.pending ? "pending: turning " + view.pending : view.led));

    var board = el("board");
    board.dataset.presence = view.presence;
    el("board-text").textContent = view.presence === "online" ? "board online" : view.presence === "offline" ? "board offline" : "board: not heard from yet";

    var conn = el("conn");
    conn.dataset.conn = view.conn;
    el("conn-text").textContent = {
      connecting: "broker: connecting…",
      connected: "broker: connected",
      reconnecting: "broker: connection lost, reconnecting…",
      refused: "broker: refused (" + view.refusal + ")",
    }[view.conn];

    var hint = "";
    if (view.conn === "refused") hint = "The broker refused this page: " + view.refusal + ".";
    else if (view.conn !== "connected") hint = "Not connected to the broker: the switch shows the last state the board reported.";
    else if (view.pending && view.presence === "offline") hint = "The board is offline: the command waits on the broker and runs when the board is back.";
    else if (view.pending) hint = "Sent; waiting for the board to confirm.";
    else if (view.led === "unknown") hint = "No state reported yet on " + base + "/state.";
    el("hint").textContent = hint;
  }

  function savedLogin() {
    try {
      var s = localStorage.getItem(credentialsKey) || sessionStorage.getItem(credentialsKey);
      return s ? JSON.parse(s) : null;
    } catch (e) {
      return null;
    }
  }

  var client = null;

  function connect() {
    var login = savedLogin();
    var opts = {
      clientId: "led-page-" + Math.random().toString(16).slice(2, 10),
      clean: true,
      keepalive: 30,
      reconnectPeriod: 2000,
      connectTimeout: 10000,
      resubscribe: false, // subscribed again on every connect, below
    };
    if (login) {
      opts.username = login.username;
      if (login.password) opts.password = login.password;
    }
    client = mqtt.connect(brokerUrl, opts);
    client.on("connect", function () {
      view.conn = "connected";
      // Retained reports arrive at once: the board's last state and presence.
      client.subscribe([base + "/state", base + "/status"], { qos: 1 });
      el("login").hidden = true;
      render();
    });
    client.on("reconnect", function () {
      if (view.conn !== "refused") view.conn = view.conn === "connected" || view.conn === "reconnecting" ? "reconnecting" : "connecting";
      render();
    });
    client.on("offline", function () {
      if (view.conn === "connected") view.conn = "reconnecting";
      render();
    });
    client.on("error", function (err) {
      // CONNACK 4 (bad user name or password) or 5 (not authorized): ask, and stop retrying.
      if (err && (err.code === 4 || err.code === 5 || err.code === 134 || err.code === 135)) {
        view.conn = "refused";
        view.refusal = err.code === 4 || err.code === 134 ? "bad user name or password" : "not authorized";
        client.end(true);
        el("login").hidden = false;
        render();
      }
    });
    client.on("message", function (t, payload) {
      var text = payload.toString();
      if (t === base + "/state" && (text === "on" || text === "off")) {
        view.led = text;
        if (view.pending === text) view.pending = null;
      } else if (t === base + "/status") {
        view.presence = text === "online" || text === "offline" ? text : "unknown";
      }
      render();
    });
  }

  sw.addEventListener("click", function () {
    if (!client || view.conn === "refused") return;
    var want = (view.pending || view.led) === "on" ? "off" : "on";
    view.pending = want;
    // QoS 1, not retained: the broker keeps it for a board that is offline, and a
    // board that boots later does not replay an old tap.
    client.publish(base, want, { qos: 1, retain: false });
    render();
  });

  el("login").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var login = JSON.stringify({ username: el("user").value, password: el("password").value });
    try {
      localStorage.removeItem(credentialsKey);
      sessionStorage.removeItem(credentialsKey);
      (el("remember").checked ? localStorage : sessionStorage).setItem(credentialsKey, login);
    } catch (e) { /* private mode: this session only */ }
    el("password").value = "";
    view.conn = "connecting";
    render();
    connect();
  });

  el("title").textContent = base;
  document.title = base + " — LED";
  el("where").textContent = brokerUrl.replace(/\/$/, "") + " · " + base;
  // The manifest's start_url keeps this page's settings when it is added to a home screen.
  var manifest = document.querySelector('link[rel="manifest"]');
  if (manifest && location.search) manifest.href = "manifest.webmanifest" + location.search;

  render();
  if (typeof mqtt === "undefined") {
    view.conn = "refused";
    view.refusal = "mqtt.min.js did not load";
    render();
    return;
  }
  connect();
})();
