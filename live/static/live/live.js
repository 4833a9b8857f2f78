// The page's only script: keeps the WebSocket alive, orders swaps by version,
// names the tab, counts the expiry down and tells screen readers what a push
// changed. htmx does the rest.
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
  // A login rotates the CSRF token (and another tab may have logged in), so
  // every request takes the token from the cookie as it is now, not the one
  // the page was rendered with; a form's own hidden copy is brought up to date.
  function csrfToken() {
    var found = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return found ? decodeURIComponent(found[1]) : null;
  }
  document.addEventListener("htmx:configRequest", function (evt) {
    evt.detail.headers["X-Live-Tab"] = label;
    var token = csrfToken();
    if (token) {
      evt.detail.headers["X-CSRFToken"] = token;
      if (evt.detail.parameters && evt.detail.parameters.csrfmiddlewaretoken !== undefined) {
        evt.detail.parameters.csrfmiddlewaretoken = token;
      }
    }
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

  // Pushes and HTTP answers race; never let an older version of the same
  // session replace a newer one. Another session (after a login, a logout or
  // a flush) starts its versions afresh, and always replaces the old one.
  document.addEventListener("htmx:oobBeforeSwap", function (evt) {
    var incoming = evt.detail.fragment && evt.detail.fragment.firstElementChild;
    var target = evt.detail.target;
    var same = incoming && target && incoming.getAttribute &&
      incoming.getAttribute("data-session-id") === target.getAttribute("data-session-id");
    var next = versionOf(incoming);
    var current = versionOf(target);
    if (same && next !== null && current !== null && next < current) {
      evt.detail.shouldSwap = false;
    }
  });

  // A whole document (an error page of Django's, in DEBUG with its traceback,
  // or a proxy's) is never put into the page: it is not a fragment of it,
  // and its inline styles and scripts break the page's policy. django-htmx's
  // debug script would replace the page with any answer of 400, 403, 404 or
  // 500, so this listens first, on the window while capturing, and keeps
  // every answer from it: a fragment goes to htmx, which swaps it as the
  // page's responseHandling says; a document becomes one sentence in place.
  window.addEventListener("htmx:beforeOnLoad", function (evt) {
    evt.stopPropagation();
    var xhr = evt.detail.xhr;
    var body = xhr && typeof xhr.response === "string" ? xhr.response : "";
    if (!/^\s*(<!doctype|<html)/i.test(body)) { return; }
    evt.preventDefault();
    refuse("The server refused this request (status " + xhr.status + "), and nothing on this page changed.");
  }, true);

  // An answer is swapped after the control that asked for it may have been
  // replaced by a push (the login form, inside #account, by the login's own
  // push): htmx would look for the out-of-band targets inside the detached
  // control and find none. Such an answer is swapped against the document.
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var detail = evt.detail;
    if (!detail.shouldSwap || typeof detail.serverResponse !== "string") { return; }
    // detail.elt is the element the event fires on (the target): the
    // control that asked is the request's.
    var asked = detail.requestConfig && detail.requestConfig.elt;
    var target = detail.target;
    if (asked && target && !(asked.isConnected && target.isConnected)) {
      // A reconnect may have replaced the target too: the same id, in the document.
      target = target.isConnected ? target : document.getElementById(target.id);
      detail.shouldSwap = false;
      if (target) {
        htmx.swap(target, detail.serverResponse, {swapStyle: "outerHTML", swapDelay: 0, settleDelay: 20});
      }
    }
  });

  function refuse(sentence) {
    var editor = document.getElementById("editor");
    if (!editor) { return; }
    var old = editor.querySelector("[data-error]");
    if (old) { old.remove(); }
    var p = document.createElement("p");
    p.className = "error";
    p.setAttribute("role", "alert");
    p.setAttribute("data-error", "");
    p.textContent = sentence;
    editor.appendChild(p);
  }

  // One polite sentence per change that reaches the page, from the newest
  // timeline entry's data-announce; an entry already seen (an answer and its
  // push carry the same one) is not said twice.
  var heard = null;
  function newestEntry() {
    var history = document.getElementById("session-history");
    var entry = history && history.querySelector("[data-history-version]");
    if (!entry) { return null; }
    return {
      session: history.getAttribute("data-session-id"),
      version: parseInt(entry.getAttribute("data-history-version"), 10),
      text: entry.getAttribute("data-announce") || ""
    };
  }
  function announceNewest() {
    var entry = newestEntry();
    if (!entry) { return; }
    var fresh = !heard || entry.session !== heard.session || entry.version > heard.version;
    var first = heard === null;
    heard = entry;
    var region = document.getElementById("live-announcer");
    if (first || !fresh || !region || !entry.text) { return; }
    region.textContent = entry.text + ".";
  }
  document.addEventListener("DOMContentLoaded", function () { heard = newestEntry() || false; });
  document.addEventListener("htmx:wsAfterMessage", announceNewest);
  document.addEventListener("htmx:afterSettle", announceNewest);

  function setStatus(text, state) {
    var el = document.getElementById("live-status");
    if (el) {
      el.textContent = text;
      el.setAttribute("data-state", state);
    }
  }

  // Tabs of one browser share its cookie, and any answer may set it (a login,
  // a logout, a flush, a first write). A socket opened while this tab's answer
  // is on its way would carry the old cookie, so a tab reconnects only once its
  // own answers are in; and a socket opened while any tab's answer came in may
  // have carried the old one, so a "no session" from it is asked again.
  var pending = 0;     // this tab's requests still on their way
  var answers = 0;     // answers heard of so far, in this tab or another
  var askedAt = 0;     // `answers` when the current socket was asked for
  var waiting = false; // a reconnect waits for this tab's answers
  var ended = false;   // the browser held no session when this tab last asked

  // A new socket on the same element: its URL gets a new count, which makes
  // htmx set the element up again, with a socket of its own. The page's
  // elements stay in place, so an answer still in flight finds the editor it
  // targets and its out-of-band targets. The server sends what the browser's
  // cookie holds now.
  var reconnects = 0;
  function reconnect() {
    var live = document.getElementById("live");
    if (!live || !live.hasAttribute("ws-connect")) { return; }
    if (pending > 0) {
      waiting = true;
      setStatus("reconnecting after this tab's answer…", "waiting");
      return;
    }
    waiting = false;
    askedAt = answers;
    var url = live.getAttribute("ws-connect").replace(/&again=\d+$/, "");
    reconnects += 1;
    live.setAttribute("ws-connect", url + "&again=" + reconnects);
    htmx.process(live);
  }

  // Another tab's answer (or its page load) may have started a session.
  var tabs = "BroadcastChannel" in window ? new BroadcastChannel("live-session") : null;
  function answered() {
    answers += 1;
    if (ended || (waiting && pending === 0)) { reconnect(); }
  }
  if (tabs) { tabs.onmessage = answered; }
  document.addEventListener("DOMContentLoaded", function () {
    if (tabs) { tabs.postMessage("session"); }
  });
  // The request's own end, not htmx's afterRequest: that one is not heard
  // here when the control that asked was replaced while it waited.
  document.addEventListener("htmx:beforeSend", function (evt) {
    var xhr = evt.detail.xhr;
    pending += 1;
    xhr.addEventListener("loadend", function () {
      pending -= 1;
      if (xhr.status && tabs) { tabs.postMessage("session"); }
      answered();
    });
  });

  document.addEventListener("htmx:wsOpen", function () {
    ended = false;
    setStatus("live", "open");
  });
  document.addEventListener("htmx:wsClose", function (evt) {
    var code = evt.detail.event.code;
    setStatus("reconnecting…", "closed");
    if ([1006, 1011, 1012, 1013].indexOf(code) >= 0) {
      return; // htmx reconnects these by itself
    }
    if (code === 4404) {
      if (answers !== askedAt) {
        reconnect(); // an answer came in meanwhile: its cookie decides
        return;
      }
      // This browser holds no session now: wait until a tab starts one.
      ended = true;
      setStatus("no session", "ended");
      return;
    }
    // Refusals that a retry cannot fix: not allowed, too many tabs, a message too big.
    var refused = {4403: "not allowed", 4429: "too many tabs", 4009: "refused"};
    if (refused[code]) {
      setStatus(refused[code], "ended");
      return;
    }
    // The session left this key (4307: a login, a logout, a flush, a key
    // cycled), or an idle timeout's 1000, a proxy's 1001: a fresh socket
    // follows the cookie. The short wait lets another tab's answer, which
    // this tab cannot see on its way, set the cookie first; if it comes
    // later, the "no session" above is asked again.
    setTimeout(reconnect, 300);
  });

  // As the server spells it (live.web.durations): the largest whole unit.
  function human(seconds) {
    var units = [[86400, " day", " days"], [3600, " h", " h"], [60, " min", " min"], [1, " s", " s"]];
    for (var i = 0; i < units.length; i++) {
      if (seconds >= units[i][0]) {
        var n = Math.floor(seconds / units[i][0]);
        return n + (n === 1 ? units[i][1] : units[i][2]);
      }
    }
    return "0 s";
  }

  setInterval(function () {
    var now = Date.now();
    document.querySelectorAll("[data-expires-at]").forEach(function (el) {
      var left = Math.round((Date.parse(el.getAttribute("data-expires-at")) - now) / 1000);
      var counter = el.parentNode.querySelector("[data-countdown]");
      if (counter) {
        counter.textContent = human(Math.max(left, 0));
        counter.setAttribute("data-seconds", String(Math.max(left, 0)));
      }
    });
  }, 1000);
})();
