// The rates explorer: draws the chart from the series table the server rendered
// (the page works without this script; it only adds the picture).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const svg = document.getElementById("chart");
  const rows = document.querySelectorAll("#series tbody tr");
  if (!svg || !window.pricehubChart) return;
  const num = (s) => (s === "" || s === undefined ? null : Number(s));
  const points = Array.from(rows, (tr) => ({
    day: tr.dataset.day,
    price: num(tr.dataset.price),
    count: num(tr.dataset.count),
  }));
  window.pricehubChart.series(svg, points, { label: "Daily average price" });
  svg.dataset.drawn = String(points.length);
});
