// berth portal: small improvements; every page works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // Copy buttons: data-copy names the input whose value is copied.
  document.querySelectorAll("button[data-copy]").forEach(function (b) {
    b.addEventListener("click", function () {
      var input = document.getElementById(b.dataset.copy);
      if (!input) return;
      var done = function () { var t = b.textContent; b.textContent = "✓"; setTimeout(function () { b.textContent = t; }, 1200); };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).then(done, function () { input.select(); });
      } else {
        input.select();
        try { document.execCommand("copy"); done(); } catch (e) { /* the text stays selected */ }
      }
    });
  });
  // Pull command variants: docker, podman, nerdctl, ctr.
  document.querySelectorAll("button[data-variant]").forEach(function (b) {
    b.addEventListener("click", function () {
      var input = document.getElementById(b.dataset.target);
      if (input) input.value = b.dataset.command;
      document.querySelectorAll("button[data-variant]").forEach(function (o) {
        o.setAttribute("aria-pressed", o === b ? "true" : "false");
      });
    });
  });
  // A label's color, when it is one (the CSP allows no style attribute).
  document.querySelectorAll(".label[data-color]").forEach(function (e) {
    if (/^#([0-9a-fA-F]{3}){1,2}$/.test(e.dataset.color)) e.style.borderLeftColor = e.dataset.color;
  });
  // Destructive forms ask first.
  document.querySelectorAll("form.confirm").forEach(function (f) {
    f.addEventListener("submit", function (e) {
      if (!window.confirm(f.dataset.confirm || "?")) e.preventDefault();
    });
  });
  // The page size applies as soon as it is chosen.
  document.querySelectorAll("select.autosubmit").forEach(function (s) {
    s.addEventListener("change", function () { s.form.submit(); });
  });
  // Filtering as you type narrows the rows shown; Enter asks the server.
  document.querySelectorAll("input[data-filter]").forEach(function (input) {
    var table = document.getElementById(input.dataset.filter);
    if (!table) return;
    input.addEventListener("input", function () {
      var needle = input.value.trim().toLowerCase();
      table.querySelectorAll("tbody tr").forEach(function (row) {
        var tags = Array.prototype.map.call(row.querySelectorAll(".tag"), function (t) { return t.textContent.toLowerCase(); });
        var hit = !needle || tags.some(function (t) { return t.indexOf(needle) >= 0; });
        row.classList.toggle("hidden", !hit);
      });
    });
  });
});
