// The page's only script: keeps the WebSocket alive, orders swaps by version,
// names the tab, and counts the expiry down. htmx does the rest.
(function () {
  "use strict";

  // Reconnect fast: 250 ms, doubling to at most 2 s, with jitter.
  htmx.config.wsReconnectDelay = function (retryCount) {
    var base = Math.min(250 * Math.pow(2, retryCount), 2000);
    return base / 2 + Math.random() * base / 2;
  };

  // A short label per tab, kept across reloads of the same tab, sent with
  // every request so that changes say which tab made them.
  var label = sessionStorage.getItem("live-tab");
  if (!label) {
    label = Math.random().toString(36).slice(2, 6);
    sessionStorage.setItem("live-tab", label);
  }
  document.addEventListener("htmx:configRequest", function (evt) {
    evt.detail.headers["X-Live-Tab"] = label;
  });
  // The socket carries the label too, for the page's list of open tabs. This
  // runs before htmx processes the page (deferred scripts precede DOMContentLoaded).
  document.querySelectorAll("[ws-connect]").forEach(function (el) {
    var url = el.getAttribute("ws-connect");
    el.setAttribute("ws-connect", url + (url.indexOf("?") < 0 ? "?" : "&") + "tab=" + label);
  });

  function versionOf(el) {
    var v = el && el.getAttribute && el.getAttribute("data-session-version");
    return v === null || v === undefined ? null : parseInt(v, 10);
  }

  // Pushes and HTTP answers race; never let an older version replace a newer one.
  document.addEventListener("htmx:oobBeforeSwap", function (evt) {
    var incoming = evt.detail.fragment && evt.detail.fragment.firstElementChild;
    var next = versionOf(incoming);
    var current = versionOf(evt.detail.target);
    if (next !== null && current !== null && next < current) {
      evt.detail.shouldSwap = false;
    }
  });

  function setStatus(text, state) {
    var el = document.getElementById("live-status");
    if (el) {
      el.textContent = text;
      el.setAttribute("data-state", state);
    }
  }

  document.addEventListener("htmx:wsOpen", function () { setStatus("live", "open"); });
  document.addEventListener("htmx:wsClose", function (evt) {
    var code = evt.detail.event.code;
    setStatus("reconnecting…", "closed");
    if ([1006, 1011, 1012, 1013].indexOf(code) >= 0) {
      return; // htmx reconnects these by itself
    }
    // Refusals that a retry cannot fix: no session, not allowed, too many
    // tabs, a message too big. Anything else gets a fresh socket.
    var refused = {4403: "not allowed", 4404: "no session", 4429: "too many tabs", 4009: "refused"};
    if (refused[code]) {
      setStatus(refused[code], "ended");
      return;
    }
    // Anything else (an idle timeout's 1000, a proxy's 1001): start a new
    // socket by re-processing a fresh copy of the element that holds it.
    setTimeout(function () {
      var live = document.getElementById("live");
      if (!live) { return; }
      var fresh = live.cloneNode(true);
      live.replaceWith(fresh);
      htmx.process(fresh);
    }, 500);
  });

  function human(seconds) {
    var d = Math.floor(seconds / 86400), h = Math.floor(seconds % 86400 / 3600);
    var m = Math.floor(seconds % 3600 / 60), s = seconds % 60;
    if (d) { return d + " d " + h + " h"; }
    return (h ? h + " h " : "") + (h || m ? m + " min " : "") + s + " s";
  }

  // Versions keep growing across a flush or a key rotation (the engine
  // carries them over), so the guard above holds for successor sessions too.
  setInterval(function () {
    var now = Date.now();
    document.querySelectorAll("[data-expires-at]").forEach(function (el) {
      var left = Math.round((Date.parse(el.getAttribute("data-expires-at")) - now) / 1000);
      var counter = el.parentNode.querySelector("[data-countdown]");
      if (counter) { counter.textContent = human(Math.max(left, 0)); }
    });
  }, 1000);
})();
