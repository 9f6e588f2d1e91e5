// The response-time chart of a monitor's page (uPlot): average milliseconds per bucket over the chosen
// range. The time axis always spans that range ending now, so a new monitor's single point sits at the
// right edge of a day (not in a window of years). Buckets with failed checks are shaded red across the
// plot: a failure has no response time, so it is a gap in the line, never a point at 0 ms.
// Data comes from a JSON script tag (the CSP forbids inline JS).
(function () {
  "use strict";

  function failureBands(data, danger, el) {
    return function (u) {
      var ctx = u.ctx, top = u.bbox.top, height = u.bbox.height, shaded = 0;
      ctx.save();
      ctx.fillStyle = danger;
      data.failures.forEach(function (n, i) {
        if (!n) return;
        var left = u.valToPos(data.x[i], "x", true);
        var right = u.valToPos(data.x[i] + data.step, "x", true);
        var width = Math.max(2 * devicePixelRatio, right - left);
        ctx.globalAlpha = 0.18;
        ctx.fillRect(left, top, width, height);
        ctx.globalAlpha = 1;
        ctx.fillRect(left, top, width, 3 * devicePixelRatio);  // a solid tick along the top
        shaded += 1;
      });
      ctx.restore();
      el.dataset.failedBuckets = String(shaded);
      el.dataset.xMin = String(u.scales.x.min);
      el.dataset.xMax = String(u.scales.x.max);
    };
  }

  function draw(el) {
    if (!window.uPlot || el.dataset.drawn) return;
    var data = JSON.parse(document.getElementById(el.dataset.uptimeChart).textContent);
    var style = getComputedStyle(document.documentElement);
    var accent = style.getPropertyValue("--accent").trim() || "#2563eb";
    var danger = style.getPropertyValue("--danger").trim() || "#d93025";
    var ink = style.getPropertyValue("--muted").trim() || "#666";
    var grid = style.getPropertyValue("--line").trim() || "#ddd";
    var axis = { stroke: ink, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    var opts = {
      width: Math.max(280, el.clientWidth), height: 200,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), data.zone); },
      legend: { show: false }, cursor: { drag: { x: false, y: false } },
      scales: {
        x: { time: true, range: function () { return [data.start, data.end]; } },
        y: { range: function (u, min, max) { return [0, Math.max(10, (max || 0) * 1.1)]; } },
      },
      series: [
        {},
        // A lone bucket between gaps has no line to draw: show every bucket as a small point too.
        { label: "ms", stroke: accent, fill: accent + "22", width: 1.5, spanGaps: false,
          points: { show: true, size: 4, fill: accent, stroke: accent } },
      ],
      axes: [axis, Object.assign({}, axis, { size: 64, values: function (u, ticks) { return ticks.map(function (v) { return v + " ms"; }); } })],
      hooks: { draw: [failureBands(data, danger, el)] },
    };
    el.dataset.drawn = "1";
    var plot = new uPlot(opts, [data.x, data.y], el);
    window.addEventListener("resize", function () { plot.setSize({ width: Math.max(280, el.clientWidth), height: 200 }); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-uptime-chart]").forEach(draw);
  });
})();
