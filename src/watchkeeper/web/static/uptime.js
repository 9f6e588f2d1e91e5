// The response-time chart of a monitor's page (uPlot): average milliseconds per bucket, failed
// checks marked in red along the bottom. Data comes from a JSON script tag (the CSP forbids inline JS).
(function () {
  "use strict";

  function draw(el) {
    if (!window.uPlot || el.dataset.drawn) return;
    var data = JSON.parse(document.getElementById(el.dataset.uptimeChart).textContent);
    var style = getComputedStyle(document.documentElement);
    var accent = style.getPropertyValue("--accent").trim() || "#2563eb";
    var danger = style.getPropertyValue("--danger").trim() || "#d93025";
    var ink = style.getPropertyValue("--muted").trim() || "#666";
    var grid = style.getPropertyValue("--line").trim() || "#ddd";
    var axis = { stroke: ink, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    var failed = data.failures.map(function (n) { return n > 0 ? 0 : null; });
    var opts = {
      width: Math.max(280, el.clientWidth), height: 200,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), data.zone); },
      legend: { show: false }, cursor: { drag: { x: false, y: false } },
      scales: { y: { range: function (u, min, max) { return [0, Math.max(10, max * 1.1)]; } } },
      series: [
        {},
        { label: "ms", stroke: accent, fill: accent + "22", width: 1.5, spanGaps: false, points: { show: false } },
        { label: "failed", stroke: danger, width: 0, points: { show: true, size: 6, fill: danger, stroke: danger } },
      ],
      axes: [axis, Object.assign({}, axis, { size: 64, values: function (u, ticks) { return ticks.map(function (v) { return v + " ms"; }); } })],
    };
    el.dataset.drawn = "1";
    var plot = new uPlot(opts, [data.x, data.y, failed], el);
    window.addEventListener("resize", function () { plot.setSize({ width: Math.max(280, el.clientWidth), height: 200 }); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-uptime-chart]").forEach(draw);
  });
})();
