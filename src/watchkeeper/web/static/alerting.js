// The alerting pages' behaviours: show the settings of the chosen rule kind, and draw the back-test
// chart (minutes in which the rule would have been firing) when htmx brings it in. No inline scripts.
(function () {
  "use strict";

  function showKind(form) {
    var select = form.querySelector("select[data-rule-kind]");
    if (!select) return;
    form.querySelectorAll("fieldset[data-kind]").forEach(function (set) {
      var active = set.dataset.kind === select.value;
      set.hidden = !active;
      if (active) set.removeAttribute("data-inactive");
    });
  }

  function drawFiring(root) {
    if (!window.uPlot) return;
    var found = Array.prototype.slice.call(root.querySelectorAll ? root.querySelectorAll("[data-firing-chart]") : []);
    if (root.matches && root.matches("[data-firing-chart]")) found.push(root);
    found.forEach(function (el) {
      if (el.dataset.drawn) return;
      var data = JSON.parse(el.dataset.firingChart);
      var style = getComputedStyle(document.documentElement);
      var colour = style.getPropertyValue("--danger").trim() || "#b91c1c";
      var ink = style.getPropertyValue("--muted").trim() || "#666";
      var grid = style.getPropertyValue("--line").trim() || "#ddd";
      var axis = { stroke: ink, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
      var size = function () { return { width: Math.max(260, el.clientWidth), height: 140 }; };
      var opts = Object.assign(size(), {
        tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), data.zone); },
        legend: { show: false }, cursor: { drag: { x: false, y: false } },
        scales: { y: { range: function (u, min, max) { return [0, Math.max(1, max)]; } } },
        series: [{}, { label: "firing", stroke: colour, fill: colour + "40", width: 1.5, points: { show: false },
                       paths: uPlot.paths.stepped({ align: 1 }) }],
        axes: [axis, Object.assign({}, axis, { size: 48, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] })],
      });
      el.dataset.drawn = "1";
      var plot = new uPlot(opts, [data.x, data.y], el);
      window.addEventListener("resize", function () { plot.setSize(size()); });
    });
  }

  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("select[data-rule-kind]")) showKind(event.target.form);
  });
  document.addEventListener("htmx:load", function (event) { drawFiring(event.target); });
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form.rule-form").forEach(showKind);
    drawFiring(document);
  });
})();
