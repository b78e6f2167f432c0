// The scan page follows its scan: a long poll of the status endpoint;
// when the status changes the page reloads (the server renders every
// state), and a confirmed scan goes on to finish the sign-in.
(function () {
  "use strict";
  var el = document.querySelector("[data-scan]");
  if (!el) { return; }
  var status = el.getAttribute("data-status");
  var statusURL = el.getAttribute("data-status-url");
  var finishURL = el.getAttribute("data-finish-url");
  if (status === "confirmed") { window.location.assign(finishURL); return; }
  if (status !== "waiting" && status !== "scanned") { return; }
  var failures = 0;
  function poll() {
    fetch(statusURL + "?since=" + encodeURIComponent(status), {credentials: "same-origin", cache: "no-store"})
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
      .then(function (s) {
        failures = 0;
        if (s.status === status) { poll(); return; }
        if (s.status === "confirmed") { window.location.assign(finishURL); return; }
        window.location.reload();
      })
      .catch(function () {
        failures++;
        setTimeout(poll, Math.min(30000, 1000 * failures));
      });
  }
  poll();
})();
