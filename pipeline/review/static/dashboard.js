// Leaders' dashboard: draws the two charts and keeps every figure current. Server-sent events
// from /api/dashboard/events bring the figures as sales land; where a proxy cuts the stream the
// page polls /api/dashboard every few seconds instead, and tries the stream again later.
(function () {
  "use strict";
  var root = document.getElementById("dashboard");
  if (!root) return;
  var REFRESH_MS = Number(root.dataset.refreshMs) || 30000;
  var C = window.eincomeCharts;
  var rp = C.rp, pct = C.pct, rpShort = C.rpShort, num = C.num;
  var words = JSON.parse(document.getElementById("ui-text").textContent);
  var charts = window.dashboardCharts = {};

  function measures(id, byMeasure, labels, lines, d) {
    // Each measure on its own: lost sales and lost tax are different money, never one sum.
    var el = document.getElementById(id);
    if (!el) return;
    el.textContent = "";
    var keys = (d.text.measure_order || Object.keys(byMeasure || {})).filter(function (m) {
      return byMeasure && byMeasure[m];  // measures with money missing; "Rp 0" says nothing
    });
    if (!keys.length) { el.textContent = "–"; return; }
    keys.forEach(function (m, i) {
      if (i) el.appendChild(lines ? document.createElement("br") : document.createTextNode("; "));
      var span = document.createElement("span");
      span.dataset.measure = m;
      span.textContent = (labels[m] || m) + ": " + rp(byMeasure[m]);
      el.appendChild(span);
    });
  }

  function text(id, value) { var el = document.getElementById(id); if (el) el.textContent = value; }

  function fillTable(id, rows, label) {
    var body = document.querySelector("#" + id + " tbody");
    if (!body) return;
    body.textContent = "";
    rows.forEach(function (r) {
      var tr = document.createElement("tr");
      [label(r), rpShort(r.today), rpShort(r.last_week), pct(r.change)].forEach(function (v, i) {
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
      fmtDate: C.fmtDate,
      scales: { x: { time: true } },
      legend: { show: false }, // the tooltip shows the values under the cursor or finger
      series: [
        {},
        { label: words.last_week, stroke: "#9aa5b4", width: 1.5, fill: bars ? "rgba(154,165,180,0.35)" : undefined,
          paths: bars ? uPlot.paths.bars({ size: [0.4, 40], align: -1 }) : undefined },
        { label: words.today, stroke: "#0b5c8a", width: 2, fill: bars ? "rgba(11,92,138,0.7)" : undefined,
          paths: bars ? uPlot.paths.bars({ size: [0.4, 40], align: 1 }) : undefined },
      ],
      axes: [C.timeAxis, C.moneyAxis()],
      plugins: [C.tooltip(d.tz, false)],
    });
    charts[id] = new uPlot(opts, data, el);
    el.dataset.drawn = "1";
    window.addEventListener("resize", function () { charts[id].setSize(size(el)); });
  }

  function render(d) {
    // Every sentence comes from the server in the page's language (d.text); only placed here.
    text("d-day", d.text.day);
    text("d-as-of", d.text.as_of);
    text("d-live", d.text.live_as_of);
    text("d-total-label", d.text.total_label);
    text("d-compare", d.text.compare_day);
    var note = document.getElementById("d-note");
    if (note) { note.textContent = d.text.note; note.hidden = !d.text.note; }
    text("d-today", rp(d.today_total));
    var change = document.getElementById("d-change");
    if (change) {
      change.textContent = d.text.change;
      change.className = d.change != null && d.change < 0 ? "down" : "up";
    }
    text("d-last-week", rp(d.last_week_same_time));
    text("d-last-week-total", rp(d.last_week_total));
    text("d-open", num(d.open_cases));
    measures("d-open-rp", d.open_shortfall_by_measure, d.text.measures, true, d);
    text("d-field", num(d.field_check_cases));
    measures("d-confirmed-rp", d.confirmed_shortfall_30d_by_measure, d.text.measures, false, d);
    fillTable("t-type", d.by_revenue_type, function (r) { return (d.text.revenue_types || {})[r.name] || r.name; });
    fillTable("t-district", d.by_district, function (r) { return r.name; });
    var minutes = d.minute.today.map(function (_, i) { return d.day_start + 60 * i; });
    draw("chart-minute", [minutes, d.minute.last_week, d.minute.today], d, false);
    var hours = d.hour.today.map(function (_, i) { return d.day_start + 3600 * i; });
    draw("chart-hour", [hours, d.hour.last_week, d.hour.today], d, true);
    newCases(d.new_cases || []);
    root.dataset.updated = String(Date.now());
  }

  var shownCases = {};
  function newCases(list) {
    var ul = document.getElementById("d-new-cases");
    if (!ul || !list.length) return;
    list.slice().reverse().forEach(function (c) {
      if (shownCases[c.case_id]) return;
      shownCases[c.case_id] = true;
      var li = document.createElement("li");
      li.dataset.caseId = c.case_id;
      li.textContent = words.new_case + ": " + c.point_id + " – " + c.kind_label + " (" + rp(c.shortfall_rp) + ")";
      ul.insertBefore(li, ul.firstChild);
    });
    while (ul.children.length > 5) ul.removeChild(ul.lastChild);
    ul.hidden = false;
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

  var POLL_MS = Math.min(REFRESH_MS, 5000);
  var poller = null;
  function poll() { if (!poller) poller = setInterval(refresh, POLL_MS); }
  function live(on) {
    root.dataset.live = on ? "stream" : "poll";
    var dot = document.getElementById("d-live-dot");
    if (dot) dot.className = "live-dot" + (on ? " on" : "");
  }

  function stream() {
    if (!window.EventSource || !root.dataset.events) { live(false); poll(); return; }
    var source = new EventSource(root.dataset.events);
    var failures = 0;
    source.addEventListener("dashboard", function (e) {
      failures = 0;
      live(true);
      if (poller) { clearInterval(poller); poller = null; }
      render(JSON.parse(e.data));
    });
    source.onerror = function () {
      // The browser reconnects on its own (the server ends a stream every few minutes); after
      // repeated failures poll instead, and try the stream again in a minute.
      failures += 1;
      if (failures >= 3) {
        source.close();
        live(false);
        refresh();
        poll();
        setTimeout(stream, 60000);
      }
    };
  }

  render(JSON.parse(document.getElementById("dashboard-data").textContent));
  stream();
})();
