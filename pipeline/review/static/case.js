// Case page chart: the point's hourly revenue, its usual band, the flagged hours shaded.
(function () {
  "use strict";
  var timeAxis = window.eincomeCharts.timeAxis;
  var holder = document.getElementById("case-chart");
  var source = document.getElementById("chart-data");
  if (!holder || !source || typeof uPlot === "undefined") return;
  var d = JSON.parse(source.textContent);
  var rp = function (v) { return v == null ? "–" : "Rp " + Math.round(v).toLocaleString("id-ID"); };
  var short = function (v) {
    if (v == null) return "";
    if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(1).replace(".", ",") + " jt";
    if (Math.abs(v) >= 1e3) return (v / 1e3).toFixed(0) + " rb";
    return String(v);
  };

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
    cursor: { drag: { x: true, y: false } },
    legend: { show: false }, // the page has its own legend; the hours table gives the figures
    scales: { x: { time: true } },
    series: [
      {},
      { label: "usual q1", stroke: "rgba(11,92,138,0.28)", width: 1, value: function (u, v) { return rp(v); } },
      { label: "usual q3", stroke: "rgba(11,92,138,0.28)", width: 1, value: function (u, v) { return rp(v); } },
      { label: "usual median", stroke: "#5d6675", width: 1.5, dash: [6, 4], value: function (u, v) { return rp(v); } },
      { label: "revenue", stroke: "#0b5c8a", width: 2, value: function (u, v) { return rp(v); } },
    ],
    bands: [{ series: [2, 1], fill: "rgba(11,92,138,0.13)" }],
    axes: [timeAxis, { size: 60, values: function (u, vals) { return vals.map(short); } }],
    hooks: { drawClear: [shade] },
  });
  var data = [d.t, d.q1, d.q3, d.median, d.actual];
  var chart = new uPlot(opts, data, holder);
  holder.dataset.points = String(d.actual.filter(function (v) { return v != null; }).length);
  holder.dataset.flagged = String(d.flagged.reduce(function (a, b) { return a + b; }, 0));
  window.caseChart = chart;
  window.addEventListener("resize", function () { chart.setSize(size()); });
})();
