// The dashboard's charts: each .chart element's data-series (stats/stats.ts
// Series as JSON, written by pages.ts) drawn with uPlot, served beside this.
/* global uPlot */
const COLORS = {
  accepted: '#0b5cad',
  delivered: '#1a7f37',
  deferred: '#b35900',
  bounced: '#b00020',
};

for (const el of document.querySelectorAll('.chart')) {
  const series = JSON.parse(el.dataset.series);
  const names = Object.keys(series.counts);
  const opts = {
    width: Math.min(el.clientWidth || 640, 900),
    height: 220,
    series: [{}, ...names.map((n) => ({ label: n, stroke: COLORS[n], width: 2 }))],
    axes: [{}, { size: 50 }],
    scales: { y: { range: (u, min, max) => [0, Math.max(1, max)] } },
  };
  new uPlot(opts, [series.t, ...names.map((n) => series.counts[n])], el);
}
