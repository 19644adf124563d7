/*
 * Charts of the kept accounting (issue 12), drawn with uPlot (static/vendor/uplot, vendored from
 * the npm registry by .ci/setup). Progressive enhancement: every figure is also in the page as
 * text; without this file (or without uPlot) the pages read the same, minus the pictures.
 *
 * Data come in the page (Django's json_script), one document per chart set:
 *   <script type="application/json" id="spark-data">{"t": [...], "series": {"ID": [...]}}</script>
 *   <span data-spark="ID" data-spark-source="spark-data"></span>       a rule's sparkline
 *   <div data-chart="chart-data"></div>                               a full chart: "series" is
 *       [{"label": "...", "values": [...], "color": "#...", "dash": bool}], "unit": "packets"
 */
(function () {
  "use strict";

  const $$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));
  const cache = new Map();

  function data(id) {
    if (!cache.has(id)) {
      const node = document.getElementById(id);
      cache.set(id, node ? JSON.parse(node.textContent) : null);
    }
    return cache.get(id);
  }

  function css(name, fallback) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
  }

  function sparkline(el) {
    const source = data(el.dataset.sparkSource);
    const values = source && source.series[el.dataset.spark];
    if (!values) return;
    const width = el.clientWidth || 120;
    const height = el.clientHeight || 26;
    const max = Math.max(1, ...values);
    const stroke = css("--accent", "#1f5fbf");
    new uPlot({
      width, height, class: "spark-plot", pxAlign: false,
      cursor: { show: false }, legend: { show: false }, select: { show: false },
      scales: { x: { time: false }, y: { range: [0, max] } },
      axes: [{ show: false }, { show: false }],
      series: [{}, { stroke, width: 1.25, fill: stroke + "22", points: { show: false } }],
    }, [source.t.map((_, i) => i), values], el);
    const total = values.reduce((a, b) => a + b, 0);
    el.setAttribute("role", "img");
    el.setAttribute("aria-label", `${total} packets in the window, at most ${max} per step`);
  }

  function chart(el) {
    const source = data(el.dataset.chart);
    if (!source) return;
    const width = Math.max(320, el.clientWidth || 640);
    new uPlot({
      width, height: Number(el.dataset.height || 200), class: "usage-plot",
      scales: { x: { time: true } },
      axes: [{}, { label: source.unit || "packets", size: 60 }],
      series: [{}, ...source.series.map((s) => ({
        label: s.label, stroke: s.color, width: 1.5, dash: s.dash ? [4, 3] : undefined,
        points: { show: false },
      }))],
    }, [source.t, ...source.series.map((s) => s.values)], el);
  }

  function draw() {
    if (typeof uPlot === "undefined") return;  // the library was not vendored: text only
    $$("[data-spark]").forEach(sparkline);
    $$("[data-chart]").forEach(chart);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
