// pec-mcp dashboard: live progress of a bulk job, by a light poll of its own origin. Nothing else runs here.
"use strict";
(function () {
  var box = document.getElementById("job");
  if (!box) { return; }
  var url = box.getAttribute("data-progress");
  var EVERY_MS = 1500;
  function label(state) { return state.replace(/_/g, " "); }
  function show(data) {
    document.getElementById("bar").value = data.done;
    document.getElementById("done").textContent = String(data.done);
    var status = document.getElementById("job-status");
    status.textContent = label(data.status);
    status.className = "status status-" + data.status;
    box.setAttribute("data-status", data.status);
    document.querySelectorAll("[data-count]").forEach(function (el) {
      el.textContent = String(data.counts[el.getAttribute("data-count")] || 0);
    });
    data.recipients.forEach(function (r) {
      var row = document.querySelector('tr[data-row="' + r.row + '"]');
      if (!row) { return; }
      var badge = document.createElement("span");
      badge.className = "status status-" + r.state;
      badge.textContent = label(r.state);  // textContent: provider texts are never parsed as HTML
      var cell = row.querySelector(".state");
      cell.replaceChildren(badge);
      row.querySelector(".reason").textContent = r.reason || "";
    });
  }
  function poll() {
    fetch(url, { credentials: "same-origin", cache: "no-store" }).then(function (response) {
      if (response.status === 401) { window.location.assign("/dashboard/signin?ended=1"); return null; }
      return response.ok ? response.json() : null;
    }).then(function (data) {
      if (data) { show(data); }
      if (!data || data.status === "sending" || data.status === "awaiting_receipts") { window.setTimeout(poll, EVERY_MS); }
    }).catch(function () { window.setTimeout(poll, EVERY_MS * 4); });
  }
  var status = box.getAttribute("data-status");
  if (status === "sending" || status === "awaiting_receipts") { window.setTimeout(poll, EVERY_MS); }
}());
