// Shared by the case page and the dashboard: uPlot's time axis with a 24-hour clock and
// day-month dates, as read in Indonesia.
window.eincomeCharts = {
  timeAxis: {
    values: [
      [86400, "{D} {MMM}", "\n{YYYY}", null, null, null, null, null, 1],
      [3600, "{HH}:{mm}", "\n{D} {MMM}", null, "\n{D} {MMM}", null, null, null, 1],
      [60, "{HH}:{mm}", "\n{D} {MMM}", null, "\n{D} {MMM}", null, null, null, 1],
    ],
  },
};
