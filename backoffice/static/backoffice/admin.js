/*
 * Keeps the risk officer's screen current without a reload.
 *
 * The dashboard polls its JSON endpoint (admin/dashboard.json) every few
 * seconds; every other admin page polls admin/banner.json so a kill switch
 * activated elsewhere (by the circuit breaker, the API, another officer)
 * shows up here too. Both answer {"panels": {name: html}}: the server renders
 * every panel, this script only swaps each [data-panel=name] element's
 * content, so there is one renderer and nothing to keep in step.
 *
 * A failed refresh never leaves old numbers looking current: the "live"
 * marker turns red and says since when the data is stale.
 */
(function () {
  "use strict";

  function utcTime(iso) {
    var date = iso ? new Date(iso) : new Date();
    return date.toISOString().substring(11, 19);
  }

  function swapPanels(panels) {
    Object.keys(panels || {}).forEach(function (name) {
      document.querySelectorAll('[data-panel="' + name + '"]').forEach(function (element) {
        element.innerHTML = panels[name];
      });
    });
  }

  function start() {
    var dashboard = document.querySelector("[data-dashboard-url]");
    var banner = document.querySelector("#risk-banner[data-refresh-url]");
    var source = dashboard || banner;
    if (!source) {
      return;
    }
    var url = dashboard ? dashboard.getAttribute("data-dashboard-url") : banner.getAttribute("data-refresh-url");
    var every = parseInt(source.getAttribute("data-refresh-ms"), 10) || 5000;
    var live = document.querySelector("[data-live]");
    var lastGood = utcTime();
    var title = document.title;
    var inFlight = false;

    function markStale(why) {
      if (!live) {
        return;
      }
      live.classList.add("bo-stale");
      live.textContent = why + " — showing data from " + lastGood + " UTC";
    }

    function refresh() {
      if (inFlight || document.hidden) {
        return;
      }
      inFlight = true;
      fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
        .then(function (response) {
          var json = (response.headers.get("Content-Type") || "").indexOf("application/json") === 0;
          if (!response.ok || !json) {
            // A redirect to the login page answers HTML: the session has expired.
            throw new Error(json ? "refresh failed (HTTP " + response.status + ")" : "session expired: reload the page");
          }
          return response.json();
        })
        .then(function (data) {
          swapPanels(data.panels);
          lastGood = utcTime(data.generated_at);
          if (live) {
            live.classList.remove("bo-stale");
            live.innerHTML = 'live · updated <time data-updated>' + lastGood + "</time> UTC";
          }
          // A background tab says it too.
          var halted = data.kill_switch ? data.kill_switch.global_active : data.global_kill_switch_active;
          document.title = (halted ? "HALTED · " : "") + title;
        })
        .catch(function (error) {
          markStale(error && error.message && error.message.indexOf("session") === 0 ? error.message : "connection lost");
        })
        .then(function () {
          inFlight = false;
        });
    }

    window.setInterval(refresh, every);
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) {
        refresh();
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
