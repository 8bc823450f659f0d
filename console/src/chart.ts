// A bar chart in plain SVG: one group per row, one bar per numeric column.

import { h, svg } from "./dom";

const COLOURS = ["#2563eb", "#16a34a", "#d97706", "#dc2626", "#7c3aed", "#0891b2"];

export function barChart(rows: Record<string, unknown>[], label: string, series: string[]): HTMLElement {
  const width = 720;
  const height = 260;
  const pad = { top: 16, right: 16, bottom: 56, left: 48 };
  const max = Math.max(1, ...rows.flatMap((r) => series.map((s) => Number(r[s]) || 0)));
  const group = (width - pad.left - pad.right) / Math.max(1, rows.length);
  const bar = Math.max(2, (group * 0.8) / Math.max(1, series.length));
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
  const y = (v: number) => pad.top + (height - pad.top - pad.bottom) * (1 - v / max);
  chart.append(svg("line", { x1: pad.left, y1: y(0), x2: width - pad.right, y2: y(0), stroke: "#999" }));
  const top = svg("text", { x: 4, y: pad.top + 4, class: "axis" });
  top.textContent = String(max);
  chart.append(top);
  rows.forEach((row, i) => {
    series.forEach((s, j) => {
      const value = Number(row[s]) || 0;
      const rect = svg("rect", {
        x: pad.left + i * group + group * 0.1 + j * bar,
        y: y(value),
        width: bar - 1,
        height: y(0) - y(value),
        fill: COLOURS[j % COLOURS.length] ?? "#2563eb",
        "data-series": s,
      });
      const title = svg("title");
      title.textContent = `${String(row[label])} · ${s}: ${value}`;
      rect.append(title);
      chart.append(rect);
    });
    const text = svg("text", {
      x: pad.left + i * group + group / 2,
      y: height - pad.bottom + 16,
      "text-anchor": "middle",
      class: "axis",
    });
    text.textContent = String(row[label] ?? "").slice(0, 14);
    chart.append(text);
  });
  const legend = h(
    "div",
    { class: "legend" },
    ...series.map((s, j) => h("span", { class: `swatch c${j % COLOURS.length}` }, s)),
  );
  return h("figure", { class: "chart-box" }, chart as unknown as HTMLElement, legend);
}
