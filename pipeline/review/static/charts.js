// Shared by the case page and the dashboard: Indonesian number and time formats (id-ID, the same
// as the server's review/formats.py), y-axis labels sized to fit, and a tooltip with the values
// under the cursor (hover with a mouse, tap on a phone).
(function () {
  "use strict";
  var lang = document.documentElement.lang === "en" ? "en-GB" : "id-ID";
  var whole = new Intl.NumberFormat("id-ID", { maximumFractionDigits: 0 });
  var oneDecimal = new Intl.NumberFormat("id-ID", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  var upToOne = new Intl.NumberFormat("id-ID", { maximumFractionDigits: 1 });

  function rp(v) { return v == null ? "–" : (v < 0 ? "-" : "") + "Rp " + whole.format(Math.abs(Math.round(v))); }
  function num(v) { return v == null ? "–" : whole.format(v); }
  // A change already in percent points: 12.5 -> "+12,5%" (the server's signed_percent).
  function pct(v) { return v == null ? "–" : (v > 0 ? "+" : v < 0 ? "-" : "") + oneDecimal.format(Math.abs(v)) + "%"; }
  function rpShort(v) {
    // Same as the server's rupiah_short: juta (jt), ribu (rb), miliar (M), triliun (T).
    if (v == null) return "–";
    var units = [[1e12, "T"], [1e9, "M"], [1e6, "jt"], [1e3, "rb"]];
    for (var i = 0; i < units.length; i++) {
      if (Math.abs(v) >= units[i][0]) return "Rp " + upToOne.format(v / units[i][0]) + " " + units[i][1];
    }
    return rp(v);
  }
  function axisShort(v) {
    // Axis ticks: the unit without "Rp" (the chart says it is rupiah), decimals with a comma.
    if (v == null) return "";
    var units = [[1e12, " T"], [1e9, " M"], [1e6, " jt"], [1e3, " rb"]];
    for (var i = 0; i < units.length; i++) {
      if (Math.abs(v) >= units[i][0]) return upToOne.format(v / units[i][0]) + units[i][1];
    }
    return whole.format(v);
  }

  function timeText(ts, tz, withDate) {
    var opts = { timeZone: tz, hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
    if (withDate) { opts.weekday = "short"; opts.day = "numeric"; opts.month = "short"; }
    return new Intl.DateTimeFormat(lang, opts).format(new Date(ts * 1000));
  }

  // uPlot's axis-autosize recipe: the axis is as wide as its longest label, so "200 jt" is
  // never clipped to ":00 jt" whatever the font and the numbers.
  function fitAxis(u, values, axisIdx, cycleNum) {
    var axis = u.axes[axisIdx];
    if (cycleNum > 1) return axis._size;
    var size = axis.ticks.size + axis.gap;
    var longest = (values || []).reduce(function (a, v) { return String(v).length > a.length ? String(v) : a; }, "");
    if (longest) {
      u.ctx.font = axis.font[0];
      size += u.ctx.measureText(longest).width / devicePixelRatio;
    }
    return Math.ceil(size) + 4;
  }

  function tooltip(tz, withDate) {
    var tip, pinnedUntil = 0;
    function hide() { if (tip && Date.now() > pinnedUntil) tip.hidden = true; }
    function show(u, i, left, top) {
      if (i == null || left < 0) { hide(); return; }
      tip.textContent = "";
      var head = document.createElement("strong");
      head.textContent = timeText(u.data[0][i], tz, withDate);
      tip.appendChild(head);
      u.series.forEach(function (s, k) {
        if (k === 0 || !s.show || s.tip === false) return;
        var v = u.data[k][i];
        if (v == null) return;
        var line = document.createElement("div");
        line.textContent = s.label + ": " + rp(v);
        tip.appendChild(line);
      });
      tip.hidden = tip.childNodes.length < 2;
      var width = tip.offsetWidth, x = left + 12;
      if (x + width > u.over.clientWidth) x = Math.max(0, left - width - 12);
      tip.style.left = x + "px";
      tip.style.top = Math.max(0, top - tip.offsetHeight - 8) + "px";
    }
    return {
      hooks: {
        init: function (u) {
          tip = document.createElement("div");
          tip.className = "chart-tip";
          tip.hidden = true;
          u.over.appendChild(tip);
          u.over.addEventListener("mouseleave", hide);
          // A tap: show the values under the finger and keep them until the next tap, whatever
          // mouse events the browser makes up after it.
          u.over.addEventListener("touchstart", function (e) {
            var t = e.touches[0], r = u.over.getBoundingClientRect();
            var left = t.clientX - r.left, top = t.clientY - r.top;
            pinnedUntil = Date.now() + 1500;
            show(u, u.posToIdx(left), left, top);
          }, { passive: true });
        },
        setCursor: function (u) {
          if (Date.now() < pinnedUntil) return;
          show(u, u.cursor.idx, u.cursor.left, u.cursor.top);
        },
      },
    };
  }

  var NAMES = lang === "id-ID" ? {
    MMMM: ["Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September", "Oktober", "November", "Desember"],
    MMM: ["Jan", "Feb", "Mar", "Apr", "Mei", "Jun", "Jul", "Agu", "Sep", "Okt", "Nov", "Des"],
    WWWW: ["Minggu", "Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu"],
    WWW: ["Min", "Sen", "Sel", "Rab", "Kam", "Jum", "Sab"],
  } : undefined;

  window.eincomeCharts = {
    fmtDate: function (tpl) { return uPlot.fmtDate(tpl, NAMES); },
    rp: rp, num: num, pct: pct, rpShort: rpShort, axisShort: axisShort, fitAxis: fitAxis, tooltip: tooltip,
    // uPlot's time axis: 24-hour clock with a dot (06.00) and day-month dates, as read in Indonesia.
    timeAxis: {
      values: [
        [86400, "{D} {MMM}", "\n{YYYY}", null, null, null, null, null, 1],
        [3600, "{HH}.{mm}", "\n{D} {MMM}", null, "\n{D} {MMM}", null, null, null, 1],
        [60, "{HH}.{mm}", "\n{D} {MMM}", null, "\n{D} {MMM}", null, null, null, 1],
      ],
    },
    moneyAxis: function () {
      return { size: fitAxis, values: function (u, vals) { return vals.map(axisShort); } };
    },
  };
})();
