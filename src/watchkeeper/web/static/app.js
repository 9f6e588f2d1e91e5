// Small behaviours on top of server-rendered pages. Everything works without it except copying,
// the chart and select-all; no inline scripts are needed (the pages' CSP forbids them).
(function () {
  "use strict";

  function cycleTheme() {
    var order = ["auto", "light", "dark"];
    var current = document.documentElement.dataset.theme || "auto";
    var next = order[(order.indexOf(current) + 1) % order.length];
    if (next === "auto") delete document.documentElement.dataset.theme;
    else document.documentElement.dataset.theme = next;
    try { localStorage.setItem("wk-theme", next); } catch (e) { /* not kept */ }
    labelTheme();
  }

  function labelTheme() {
    var button = document.getElementById("theme-toggle");
    if (button) button.title = "Colour theme: " + (document.documentElement.dataset.theme || "auto (system)");
  }

  function copy(button) {
    var source = document.querySelector(button.dataset.copy);
    if (!source) return;
    var text = source.value !== undefined && source.tagName === "INPUT" ? source.value : source.textContent;
    var done = function () { button.textContent = "Copied"; setTimeout(function () { button.textContent = "Copy"; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, function () {});
    else if (source.select) { source.select(); document.execCommand("copy"); done(); }
  }

  function drawCharts(root) {
    if (!window.uPlot) return;
    root.querySelectorAll("[data-chart-source]").forEach(function (el) {
      if (el.dataset.drawn) return;
      var data = JSON.parse(document.getElementById(el.dataset.chartSource).textContent);
      var style = getComputedStyle(document.documentElement);
      var accent = style.getPropertyValue("--accent").trim() || "#2563eb";
      var ink = style.getPropertyValue("--muted").trim() || "#666";
      var grid = style.getPropertyValue("--line").trim() || "#ddd";
      var axis = { stroke: ink, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
      var opts = {
        width: Math.max(280, el.clientWidth), height: 180,
        tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), data.zone); },
        legend: { show: false }, cursor: { drag: { x: false, y: false } },
        scales: { y: { range: function (u, min, max) { return [0, Math.max(1, max)]; } } },
        series: [{}, { label: "events", stroke: accent, fill: accent + "33", width: 1.5, points: { show: false },
                       paths: uPlot.paths.bars({ size: [0.9, 40] }) }],
        // whole events only: no 0.5 ticks on a small count
        axes: [axis, Object.assign({}, axis, { size: 64, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 1e5, 1e6] })],
      };
      el.dataset.drawn = "1";
      var plot = new uPlot(opts, [data.x, data.y], el);
      window.addEventListener("resize", function () { plot.setSize({ width: Math.max(280, el.clientWidth), height: 180 }); });
    });
  }

  document.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target.closest("[data-copy], #theme-toggle, #filters-toggle") : null;
    if (!target) return;
    if (target.id === "theme-toggle") cycleTheme();
    else if (target.id === "filters-toggle") {
      var open = document.documentElement.classList.toggle("filters-open");
      target.setAttribute("aria-expanded", open ? "true" : "false");
    }
    else copy(target);
  });

  document.addEventListener("change", function (event) {
    if (event.target.id === "select-all") {
      var form = event.target.form;
      form.querySelectorAll('input[name="ids"]').forEach(function (box) { box.checked = event.target.checked; });
    }
  });

  document.addEventListener("submit", function (event) {
    var message = event.target.dataset && event.target.dataset.confirm;
    if (message && !window.confirm(message)) event.preventDefault();
  });

  document.addEventListener("htmx:load", function (event) { drawCharts(event.target); });
  document.addEventListener("DOMContentLoaded", function () { labelTheme(); drawCharts(document); });
})();
