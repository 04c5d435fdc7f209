// Live charts (SPEC §13): records/s in and out, errors/s and epoch latency p99 over the last 15 minutes.
// Every element with data-series="URL" gets three small SVG charts, redrawn from that URL every 2 s.
// The points are [time, in_per_s, out_per_s, errors_per_s, latency_p99_s] (GET /api/series, /api/dags/NAME/series).
"use strict";
(() => {
  const NS = "http://www.w3.org/2000/svg";
  const REFRESH_MS = 2000;
  const WIDTH = 380, HEIGHT = 150, LEFT = 48, RIGHT = 8, TOP = 22, BOTTOM = 22;
  const CHARTS = [
    { name: "rates", title: "records/s", lines: [{ field: 1, label: "in", cls: "series-in" },
      { field: 2, label: "out", cls: "series-out" }] },
    { name: "errors", title: "errors/s", lines: [{ field: 3, label: "errors", cls: "series-errors" }] },
    { name: "latency", title: "epoch latency p99 (ms)", scale: 1000, lines: [{ field: 4, label: "p99", cls: "series-p99" }] },
  ];

  function node(tag, attrs, text) {
    const made = document.createElementNS(NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) made.setAttribute(key, String(value));
    if (text !== undefined) made.textContent = text;
    return made;
  }

  // A round upper bound for the axis: 1, 2 or 5 times a power of ten.
  function roundUp(value) {
    if (!(value > 0)) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 5, 10]) if (value <= step * power) return step * power;
    return 10 * power;
  }

  function shown(value) {
    if (value === null || value === undefined) return "–";
    return value >= 100 ? value.toFixed(0) : value >= 1 ? value.toFixed(1) : value.toPrecision(2);
  }

  function chart(spec, data) {
    const points = data.points || [];
    // the x axis spans what there is, from one minute up to the whole window (15 minutes)
    const end = points.length ? points[points.length - 1][0] : Date.now() / 1000;
    const kept = points.length ? end - points[0][0] : 0;
    const span = Math.min(data.window_seconds || 900, Math.max(60, Math.ceil(kept / 60) * 60));
    const start = end - span;
    const scale = spec.scale || 1;
    const values = (field) => points.map((p) => [p[0], p[field] === null ? null : p[field] * scale]);
    let top = 0;
    for (const line of spec.lines) for (const [, v] of values(line.field)) if (v !== null && v > top) top = v;
    top = roundUp(top);
    const x = (t) => LEFT + ((t - start) / span) * (WIDTH - LEFT - RIGHT);
    const y = (v) => TOP + (1 - v / top) * (HEIGHT - TOP - BOTTOM);
    const svg = node("svg", { class: `chart chart-${spec.name}`, width: WIDTH, height: HEIGHT, role: "img",
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`, "data-points": points.length });
    svg.append(node("title", {}, `${spec.title}, the last ${span / 60} minute(s)`));
    svg.append(node("text", { x: LEFT, y: 14, class: "chart-title" }, spec.title));
    for (const fraction of [0, 0.5, 1]) {
      const level = y(top * fraction);
      svg.append(node("line", { x1: LEFT, x2: WIDTH - RIGHT, y1: level, y2: level, class: "grid" }));
      svg.append(node("text", { x: LEFT - 4, y: level + 4, class: "axis", "text-anchor": "end" },
        shown(top * fraction)));
    }
    svg.append(node("text", { x: LEFT, y: HEIGHT - 6, class: "axis" }, `-${span / 60} min`));
    svg.append(node("text", { x: WIDTH - RIGHT, y: HEIGHT - 6, class: "axis", "text-anchor": "end" }, "now"));
    let legend = WIDTH - RIGHT;
    for (const line of [...spec.lines].reverse()) {
      const series = values(line.field);
      let path = "", pen = "M", count = 0;
      for (const [t, v] of series) {
        if (v === null) { pen = "M"; continue; }
        path += `${pen}${x(t).toFixed(1)},${y(v).toFixed(1)} `;
        pen = "L";
        count += 1;
      }
      svg.append(node("path", { d: path.trim() || "M0,0", class: `series ${line.cls}`, "data-points": count }));
      const latest = series.length ? series[series.length - 1][1] : null;
      const label = node("text", { x: legend, y: 14, class: `legend ${line.cls}`, "text-anchor": "end" },
        `${line.label} ${shown(latest)}`);
      svg.append(label);
      legend -= 80;
    }
    return svg;
  }

  async function refresh(container) {
    try {
      const response = await fetch(container.dataset.series, { credentials: "same-origin",
        headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(String(response.status));
      const data = await response.json();
      container.replaceChildren(...CHARTS.map((spec) => chart(spec, data)));
      container.dataset.updated = String(Date.now());
    } catch (error) {
      container.dataset.error = String(error.message || error);
    }
    setTimeout(() => refresh(container), REFRESH_MS);
  }

  for (const container of document.querySelectorAll("[data-series]")) refresh(container);
  for (const cell of document.querySelectorAll("[data-time]")) {
    const seconds = Number(cell.dataset.time);
    if (seconds > 0) cell.textContent = new Date(seconds * 1000).toLocaleString();
  }
})();
