// Leaders' dashboard: draws the two charts and refreshes every figure from /api/dashboard.
(function () {
  "use strict";
  var timeAxis = window.eincomeCharts.timeAxis;
  var root = document.getElementById("dashboard");
  if (!root) return;
  var REFRESH_MS = Number(root.dataset.refreshMs) || 30000;
  var rp = function (v) { return v == null ? "–" : "Rp " + Math.round(v).toLocaleString("id-ID"); };
  var pct = function (v) { return v == null ? "–" : (v > 0 ? "+" : "") + v.toFixed(1) + "%"; };
  var short = function (v) {
    if (v == null) return "";
    if (Math.abs(v) >= 1e9) return (v / 1e9).toFixed(1).replace(".", ",") + " M";
    if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(1).replace(".", ",") + " jt";
    if (Math.abs(v) >= 1e3) return (v / 1e3).toFixed(0) + " rb";
    return String(v);
  };
  var rpShort = function (v) {
    // Same as the server's rupiah_short: juta (jt), ribu (rb), miliar (M).
    if (v == null) return "–";
    var units = [[1e12, "T"], [1e9, "M"], [1e6, "jt"], [1e3, "rb"]];
    for (var i = 0; i < units.length; i++) {
      if (Math.abs(v) >= units[i][0]) {
        return "Rp " + (v / units[i][0]).toFixed(1).replace(".", ",").replace(/,0$/, "") + " " + units[i][1];
      }
    }
    return rp(v);
  };
  var charts = {};

  function text(id, value) { var el = document.getElementById(id); if (el) el.textContent = value; }

  function fillTable(id, rows, label) {
    var body = document.querySelector("#" + id + " tbody");
    if (!body) return;
    body.textContent = "";
    rows.forEach(function (r) {
      var tr = document.createElement("tr");
      [label(r.name), rpShort(r.today), rpShort(r.last_week), pct(r.change)].forEach(function (v, i) {
        var td = document.createElement("td");
        td.textContent = v;
        if (i === 1) td.title = rp(r.today);
        if (i === 2) td.title = rp(r.last_week);
        if (i > 0) td.className = "num";
        if (i === 3 && r.change != null) td.className += r.change < 0 ? " down" : " up";
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
  }

  function size(el) { return { width: Math.max(260, el.clientWidth), height: el.clientWidth < 500 ? 200 : 260 }; }

  function draw(id, data, d, bars) {
    var el = document.getElementById(id);
    if (!el || typeof uPlot === "undefined") return;
    if (charts[id]) { charts[id].setData(data); return; }
    var opts = Object.assign(size(el), {
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), d.tz); },
      scales: { x: { time: true } },
      legend: { live: false },
      series: [
        {},
        { label: "last week", stroke: "#9aa5b4", width: 1.5, fill: bars ? "rgba(154,165,180,0.35)" : undefined,
          paths: bars ? uPlot.paths.bars({ size: [0.4, 40], align: -1 }) : undefined, value: function (u, v) { return rp(v); } },
        { label: "today", stroke: "#0b5c8a", width: 2, fill: bars ? "rgba(11,92,138,0.7)" : undefined,
          paths: bars ? uPlot.paths.bars({ size: [0.4, 40], align: 1 }) : undefined, value: function (u, v) { return rp(v); } },
      ],
      axes: [timeAxis, { size: 56, values: function (u, vals) { return vals.map(short); } }],
    });
    charts[id] = new uPlot(opts, data, el);
    el.dataset.drawn = "1";
    window.addEventListener("resize", function () { charts[id].setSize(size(el)); });
  }

  function render(d) {
    text("d-day", d.weekday + " " + d.day);
    text("d-as-of", d.as_of);
    text("d-total-label", d.is_today ? "Today so far" : "Day total");
    text("d-compare", d.compare_day);
    var note = document.getElementById("d-note");
    if (note) { note.textContent = d.note; note.hidden = !d.note; }
    text("d-today", rp(d.today_total));
    var change = document.getElementById("d-change");
    if (change) {
      change.textContent = d.change == null ? "no comparison" : pct(d.change) + " vs last week";
      change.className = d.change != null && d.change < 0 ? "down" : "up";
    }
    text("d-last-week", rp(d.last_week_same_time));
    text("d-last-week-total", rp(d.last_week_total));
    text("d-open", String(d.open_cases));
    text("d-open-rp", rp(d.open_shortfall_rp));
    text("d-field", String(d.field_check_cases));
    text("d-confirmed-rp", rp(d.confirmed_shortfall_30d_rp));
    fillTable("t-type", d.by_revenue_type, function (n) { return n.replace(/_/g, " "); });
    fillTable("t-district", d.by_district, function (n) { return n; });
    var minutes = d.minute.today.map(function (_, i) { return d.day_start + 60 * i; });
    draw("chart-minute", [minutes, d.minute.last_week, d.minute.today], d, false);
    var hours = d.hour.today.map(function (_, i) { return d.day_start + 3600 * i; });
    draw("chart-hour", [hours, d.hour.last_week, d.hour.today], d, true);
    root.dataset.updated = String(Date.now());
  }

  function refresh() {
    fetch(root.dataset.src, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        // Session over (sign-out elsewhere, expiry): show the login page rather than stale figures.
        if (r.redirected && r.url.indexOf("/login") !== -1) { window.location.reload(); throw new Error("signed out"); }
        if (!r.ok) throw new Error(r.status);
        return r.json();
      })
      .then(render)
      .catch(function () { /* keep the last figures; the next poll tries again */ });
  }

  render(JSON.parse(document.getElementById("dashboard-data").textContent));
  setInterval(refresh, REFRESH_MS);
})();
