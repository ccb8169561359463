// pricehub charts: small hand-written SVG, no dependencies, no network.
// Used by the rates explorer and the live dashboard. Every drawn point carries its
// numbers in data-* attributes and a <title>, so tests and screen readers can read them.
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";

  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (parent) parent.appendChild(e);
    return e;
  }

  function titled(e, text) {
    el("title", {}, e).textContent = text;
    return e;
  }

  function clear(svg) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
  }

  // Round, human tick values covering [lo, hi].
  function ticks(lo, hi, count) {
    if (!(hi > lo)) return [lo];
    const raw = (hi - lo) / Math.max(1, count);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toFixed(10));
    return out;
  }

  function extent(values) {
    const v = values.filter((x) => x !== null && x !== undefined && isFinite(x));
    if (v.length === 0) return [0, 1];
    let lo = Math.min(...v), hi = Math.max(...v);
    if (lo === hi) { lo -= Math.abs(lo) * 0.05 || 1; hi += Math.abs(hi) * 0.05 || 1; }
    const pad = (hi - lo) * 0.05;
    return [lo - pad, hi + pad];
  }

  function fmt(v) {
    return Math.abs(v) >= 1000 ? v.toLocaleString("en-US", { maximumFractionDigits: 0 })
      : v.toLocaleString("en-US", { maximumFractionDigits: 4 });
  }

  // A frame with margins, y axis and gridlines; returns scales and the plot group.
  function frame(svg, opts, yDomain, n) {
    const W = opts.width || 800, H = opts.height || 300;
    const m = { top: 12, right: opts.right || 16, bottom: 28, left: opts.left || 60 };
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("class", "chart");
    svg.setAttribute("role", "img");
    clear(svg);
    if (opts.label) titled(svg, opts.label);
    const pw = W - m.left - m.right, ph = H - m.top - m.bottom;
    const [y0, y1] = yDomain;
    const band = pw / Math.max(1, n);
    const x = (i) => m.left + band * (i + 0.5);
    const y = (v) => m.top + ph - ((v - y0) / (y1 - y0)) * ph;
    const axis = el("g", { class: "axis" }, svg);
    for (const t of ticks(y0, y1, 5)) {
      el("line", { class: "gridline", x1: m.left, x2: m.left + pw, y1: y(t), y2: y(t) }, axis);
      el("text", { x: m.left - 6, y: y(t) + 4, "text-anchor": "end" }, axis).textContent = fmt(t);
    }
    el("line", { x1: m.left, x2: m.left + pw, y1: m.top + ph, y2: m.top + ph }, axis);
    return { W, H, m, pw, ph, band, x, y, axis };
  }

  // Labels under the points; `offset` is the slot of the first label.
  function xLabels(f, labels, offset) {
    offset = offset || 0;
    const every = Math.max(1, Math.ceil((labels.length + offset) / Math.max(1, Math.floor(f.pw / 90))));
    labels.forEach((l, i) => {
      if ((i + offset) % every === 0 || i === labels.length - 1 && labels.length + offset < every) {
        el("text", { x: f.x(i + offset), y: f.m.top + f.ph + 18, "text-anchor": "middle" }, f.axis).textContent = l;
      }
    });
  }

  // Daily series: points = [{day, price, count}] oldest first; price null = no price.
  // Draws the price line (broken at missing days), the count as bars behind it, and a
  // band over each day without a price.
  function series(svg, points, opts) {
    opts = opts || {};
    const f = frame(svg, opts, extent(points.map((p) => p.price)), points.length);
    const maxCount = Math.max(1, ...points.map((p) => p.count || 0));
    const bars = el("g", { class: "bars" }, svg);
    const gaps = el("g", { class: "gaps" }, svg);
    const dots = el("g", { class: "dots" }, svg);
    let d = "", open = false;
    points.forEach((p, i) => {
      const x = f.x(i);
      if (p.count) {
        const h = (p.count / maxCount) * f.ph * 0.35;
        titled(el("rect", { class: "bar", x: x - f.band * 0.35, width: f.band * 0.7, y: f.m.top + f.ph - h, height: h,
          "data-day": p.day, "data-count": p.count }, bars), `${p.day}: ${p.count} prices`);
      }
      if (p.price === null || p.price === undefined) {
        titled(el("rect", { class: "gap", x: x - f.band / 2, width: f.band, y: f.m.top, height: f.ph,
          "data-day": p.day }, gaps), `${p.day}: no price (fewer than 3 prices)`);
        open = false;
        return;
      }
      d += (open ? "L" : "M") + x.toFixed(2) + " " + f.y(p.price).toFixed(2);
      open = true;
      titled(el("circle", { class: "dot", cx: x, cy: f.y(p.price), r: points.length > 120 ? 1.5 : 3,
        "data-day": p.day, "data-price": p.price, "data-count": p.count === null ? "" : p.count }, dots),
        `${p.day}: ${fmt(p.price)} (${p.count} prices)`);
    });
    el("path", { class: "line", d }, svg);
    xLabels(f, points.map((p) => p.day));
    return f;
  }

  // Candles: [{t: label, o, h, l, c}] oldest first. With `opts.slots`, the chart has room
  // for that many and the candles sit at its right end (so a few are not drawn huge).
  function candles(svg, items, opts) {
    opts = opts || {};
    const n = Math.max(items.length, opts.slots || 0), offset = n - items.length;
    const f = frame(svg, opts, extent(items.flatMap((c) => [c.l, c.h])), n);
    const g = el("g", { class: "candles" }, svg);
    items.forEach((c, i) => {
      const x = f.x(i + offset), cls = c.c >= c.o ? "up" : "down";
      const top = f.y(Math.max(c.o, c.c)), bottom = f.y(Math.min(c.o, c.c));
      const k = el("g", { class: cls, "data-t": c.t, "data-o": c.o, "data-h": c.h, "data-l": c.l, "data-c": c.c }, g);
      titled(k, `${c.t}: open ${fmt(c.o)} high ${fmt(c.h)} low ${fmt(c.l)} close ${fmt(c.c)}`);
      el("line", { x1: x, x2: x, y1: f.y(c.h), y2: f.y(c.l), "stroke-width": 1 }, k);
      el("rect", { x: x - f.band * 0.35, width: Math.max(1, f.band * 0.7), y: top, height: Math.max(1, bottom - top) }, k);
    });
    xLabels(f, items.map((c) => c.t), offset);
    return f;
  }

  // A bare line of values (newest last), scaled to the box.
  function sparkline(svg, values, opts) {
    opts = opts || {};
    const W = opts.width || 120, H = opts.height || 32;
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("class", "chart spark");
    svg.setAttribute("preserveAspectRatio", "none");
    clear(svg);
    const v = values.filter((x) => isFinite(x));
    if (v.length < 2) return;
    const [lo, hi] = extent(v);
    const d = v.map((val, i) => (i ? "L" : "M") + ((i / (v.length - 1)) * W).toFixed(2) + " " +
      (H - ((val - lo) / (hi - lo)) * H).toFixed(2)).join("");
    el("path", { class: "line", d, "vector-effect": "non-scaling-stroke" }, svg);
  }

  window.pricehubChart = { series, candles, sparkline, ticks, fmt };
})();
