// Branch security console: live updates over Server-Sent Events. No framework, no build step.
// The page says what it shows in <body data-live="...">: "overview", "alerts" or
// "branch:<id>". Tiles arrive rendered by the server (escaped there) and replace the old ones.
(function () {
  "use strict";

  function replaceById(id, html) {
    var old = document.getElementById(id);
    if (!old) return false;
    var t = document.createElement("template");
    t.innerHTML = html;
    var el = t.content.firstElementChild;
    if (el) old.replaceWith(el);
    return true;
  }

  // Fetches this page again and swaps one part of it, unless the user is typing in it.
  var refreshing = {};
  function refresh(partId) {
    var old = document.getElementById(partId);
    if (!old || refreshing[partId]) return;
    var active = document.activeElement;
    if (active && old.contains(active) && (active.tagName === "INPUT" || active.tagName === "SELECT")) return;
    var typed = Array.prototype.some.call(old.querySelectorAll("input[type=text]"), function (i) { return i.value !== ""; });
    if (typed) return;
    refreshing[partId] = true;
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (text) {
        var doc = new DOMParser().parseFromString(text, "text/html");
        var fresh = doc.getElementById(partId);
        var now = document.getElementById(partId);
        if (fresh && now) now.replaceWith(document.importNode(fresh, true));
      })
      .catch(function () {})
      .then(function () { refreshing[partId] = false; });
  }

  function setCounts(c) {
    ["red", "amber", "grey", "green"].forEach(function (k) {
      var el = document.getElementById("n-" + k);
      if (el && c && typeof c[k] === "number") el.textContent = String(c[k]);
    });
  }

  function start() {
    document.querySelectorAll("[data-print]").forEach(function (b) {
      b.addEventListener("click", function () { window.print(); });
    });
    var live = document.body.getAttribute("data-live");
    if (!live || !window.EventSource) return;
    var es = new EventSource("/events");
    es.addEventListener("tiles", function (e) {
      var d = JSON.parse(e.data);
      if (live === "overview") {
        var filtered = document.querySelector("[data-filtered='1']") !== null;
        var missing = false;
        d.tiles.forEach(function (t) {
          var a = replaceById("t-" + t.id, t.tile);
          var b = replaceById("r-" + t.id, t.row);
          if (!a && !b) missing = true;
        });
        setCounts(d.counts);
        // A branch heard from for the first time: show it (unless a filter hides it anyway).
        if (missing && !filtered) window.location.reload();
      } else if (live.indexOf("branch:") === 0) {
        var id = live.slice("branch:".length);
        if (d.ids.indexOf(id) >= 0) refresh("live");
      }
    });
    es.addEventListener("alerts", function () {
      if (live === "alerts" || live.indexOf("branch:") === 0) refresh("list");
    });
    es.addEventListener("db", function (e) {
      var d = JSON.parse(e.data);
      var b = document.getElementById("dbwarn");
      if (b) b.hidden = !d.error;
    });
    es.addEventListener("reload", function () { window.location.reload(); });
    // After a lost connection (server restart, network cut) the page catches up with what it
    // missed; a stream the server refuses for good (signed out, session over) reloads the page,
    // which then asks to sign in.
    var broken = false;
    es.addEventListener("error", function () {
      if (es.readyState === EventSource.CLOSED) {
        window.setTimeout(function () { window.location.reload(); }, 2000);
      } else {
        broken = true;
      }
    });
    es.addEventListener("open", function () {
      if (!broken) return;
      broken = false;
      if (live === "overview") window.location.reload();
      else if (live === "alerts") refresh("list");
      else { refresh("live"); refresh("list"); }
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
