// Case page chart: the point's hourly revenue, the prior weeks' range, the detector's expected
// revenue at each flagged hour, and the flagged hours shaded (closed hours never are).
(function () {
  "use strict";
  var C = window.eincomeCharts;
  var holder = document.getElementById("case-chart");
  var source = document.getElementById("chart-data");
  var words = JSON.parse((document.getElementById("chart-text") || { textContent: "{}" }).textContent);
  if (!holder || !source || typeof uPlot === "undefined") return;
  var d = JSON.parse(source.textContent);

  function shade(u) {
    // Flagged hours of this case: a red wash over each hour; other flags at this point: a thin mark.
    var ctx = u.ctx, top = u.bbox.top, height = u.bbox.height;
    ctx.save();
    ctx.fillStyle = "rgba(180, 35, 24, 0.16)";
    for (var i = 0; i < d.t.length; i++) {
      if (!d.flagged[i]) continue;
      var x0 = u.valToPos(d.t[i], "x", true), x1 = u.valToPos(d.t[i] + 3600, "x", true);
      ctx.fillRect(x0, top, Math.max(1, x1 - x0), height);
    }
    ctx.fillStyle = "rgba(181, 71, 8, 0.35)";
    (d.other_flags || []).forEach(function (t) {
      var x0 = u.valToPos(t, "x", true), x1 = u.valToPos(t + 3600, "x", true);
      ctx.fillRect(x0, top + height - 6 * devicePixelRatio, Math.max(1, x1 - x0), 6 * devicePixelRatio);
    });
    ctx.restore();
  }

  function size() {
    return { width: Math.max(280, holder.clientWidth), height: holder.clientWidth < 500 ? 260 : 340 };
  }

  var opts = Object.assign(size(), {
    tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), d.tz); },
    fmtDate: C.fmtDate,
    cursor: { drag: { x: true, y: false } },
    legend: { show: false }, // the page has its own legend; the tooltip gives the figures
    scales: { x: { time: true } },
    series: [
      {},
      { label: words.q1 || "q1", stroke: "rgba(11,92,138,0.28)", width: 1, tip: false },
      { label: words.q3 || "q3", stroke: "rgba(11,92,138,0.28)", width: 1, tip: false },
      { label: words.median || "median", stroke: "#5d6675", width: 1.5, dash: [6, 4] },
      { label: words.revenue || "revenue", stroke: "#0b5c8a", width: 2 },
      { label: words.expected || "expected", stroke: "#b42318", width: 0,
        points: { show: true, size: 7, stroke: "#b42318", fill: "#fff" } },
    ],
    bands: [{ series: [2, 1], fill: "rgba(11,92,138,0.13)" }],
    axes: [C.timeAxis, C.moneyAxis()],
    plugins: [C.tooltip(d.tz, true)],
    hooks: { drawClear: [shade] },
  });
  var data = [d.t, d.q1, d.q3, d.median, d.actual, d.expected];
  var chart = new uPlot(opts, data, holder);
  holder.dataset.points = String(d.actual.filter(function (v) { return v != null; }).length);
  holder.dataset.flagged = String(d.flagged.reduce(function (a, b) { return a + b; }, 0));
  window.caseChart = chart;
  window.addEventListener("resize", function () { chart.setSize(size()); });
})();
