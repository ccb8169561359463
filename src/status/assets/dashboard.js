// The live dashboard: applies GET /instruments/stream events to the server-rendered
// tiles, keeps the selected instrument's candle chart current, and refreshes the BTC
// panel. Without this script the page still shows everything as of its rendering.
"use strict";
(function () {
  const chart = window.pricehubChart;
  const tilesEl = document.getElementById("tiles");
  const status = document.getElementById("live-status");
  const candlesEl = document.getElementById("candles");
  const windowMs = Number(tilesEl && tilesEl.dataset.windowMs) || 30 * 60000;
  const tiles = new Map();

  // As the server writes it (dashboard.rs price_text): shortest form, at least 2 decimals.
  function fmtPrice(p) {
    const s = String(p), dot = s.indexOf(".");
    if (dot < 0) return s + ".00";
    return s.length - dot === 2 ? s + "0" : s;
  }
  function fmtTime(ms) {
    return new Date(ms).toISOString().slice(11, 19) + " UTC";
  }

  // A tile's sparkline series: [minute start, open, close], oldest first.
  function parseSeries(text) {
    return (text || "").split(" ").filter(Boolean).map((p) => p.split(":").map(Number));
  }

  function register(li) {
    const t = {
      li,
      price: li.querySelector(".price"),
      change: li.querySelector(".change"),
      at: li.querySelector(".at"),
      spark: li.querySelector("svg.spark"),
      series: parseSeries(li.dataset.series),
      base: Number(li.dataset.base),
    };
    tiles.set(li.dataset.symbol, t);
    return t;
  }
  if (tilesEl) tilesEl.querySelectorAll("li.tile").forEach(register);

  function newTile(symbol) {
    const li = document.createElement("li");
    li.className = "tile";
    li.dataset.symbol = symbol;
    const a = document.createElement("a");
    a.href = "/dashboard?symbol=" + encodeURIComponent(symbol);
    for (const [tag, cls] of [["span", "symbol"], ["data", "price"], ["span", "change flat"], ["time", "at muted"]]) {
      const e = document.createElement(tag);
      e.className = cls;
      a.appendChild(e);
    }
    a.querySelector(".symbol").textContent = symbol;
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("class", "chart spark");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", symbol + ", last 30 minutes");
    a.appendChild(svg);
    li.appendChild(a);
    tilesEl.appendChild(li);
    const empty = document.getElementById("no-instruments");
    if (empty) empty.hidden = true;
    // An instrument whose first trade came after the page was rendered: offer it in the
    // candle form too (a select without the option would submit an empty symbol).
    const select = document.getElementById("symbol");
    if (select && !Array.from(select.options).some((o) => o.value === symbol)) {
      select.add(new Option(symbol, symbol));
    }
    return register(li);
  }

  function apply(i) {
    const t = tiles.get(i.symbol) || (tilesEl ? newTile(i.symbol) : null);
    if (!t) return;
    t.price.value = i.price;
    t.price.textContent = fmtPrice(i.price);
    t.at.textContent = fmtTime(i.timestamp_ms);
    t.at.setAttribute("datetime", new Date(i.timestamp_ms).toISOString());
    const minute = i.timestamp_ms - (i.timestamp_ms % 60000);
    const last = t.series[t.series.length - 1];
    if (last && last[0] === minute) last[2] = i.price;
    else if (!last || minute > last[0]) t.series.push([minute, i.price, i.price]);
    // The window ends at the latest trade; the change is against its first price.
    while (t.series.length > 1 && t.series[0][0] + 60000 <= i.timestamp_ms - windowMs) t.series.shift();
    t.base = t.series[0][1];
    const pct = ((i.price - t.base) / t.base) * 100;
    t.change.textContent = (pct >= 0 ? "+" : "") + pct.toFixed(2) + "%";
    t.change.className = "change " + (pct > 0 ? "up" : pct < 0 ? "down" : "flat");
    // As the server draws it: the window's first price, then each minute's close.
    if (chart) chart.sparkline(t.spark, [t.base, ...t.series.map((p) => p[2])]);
    candleUpdate(i);
  }

  // The candle chart of the selected instrument.
  let candles = [];
  const step = candlesEl ? Number(candlesEl.dataset.stepMs) : 0;
  const SLOTS = candlesEl ? Number(candlesEl.dataset.slots) || 60 : 60;
  function label(ms) {
    const iso = new Date(ms).toISOString();
    return step >= 86400000 ? iso.slice(0, 10) : iso.slice(11, step < 60000 ? 19 : 16);
  }
  function drawCandles() {
    if (!candlesEl || !chart) return;
    document.getElementById("candles-count").textContent = String(candles.length);
    chart.candles(document.getElementById("candle-chart"),
      candles.map((c) => ({ t: label(c.start_ms), o: c.open, h: c.high, l: c.low, c: c.close })),
      { label: candlesEl.dataset.symbol + " " + candlesEl.dataset.interval + " candles", slots: SLOTS });
  }
  async function loadCandles() {
    if (!candlesEl) return;
    const s = candlesEl.dataset.symbol;
    const to = Number(candlesEl.dataset.to);
    const q = new URLSearchParams({ interval: candlesEl.dataset.interval, from: String(to - SLOTS * step), to: String(to) });
    const r = await fetch("/instruments/" + encodeURIComponent(s) + "/candles?" + q);
    if (!r.ok) return;
    candles = (await r.json()).candles;
    drawCandles();
  }
  function candleUpdate(i) {
    if (!candlesEl || i.symbol !== candlesEl.dataset.symbol) return;
    const start = i.timestamp_ms - (i.timestamp_ms % step);
    candlesEl.dataset.to = String(Math.max(Number(candlesEl.dataset.to), i.timestamp_ms + 1));
    const last = candles[candles.length - 1];
    if (last && last.start_ms === start) {
      last.high = Math.max(last.high, i.price);
      last.low = Math.min(last.low, i.price);
      last.close = i.price;
    } else if (!last || start > last.start_ms) {
      candles.push({ start_ms: start, open: i.price, high: i.price, low: i.price, close: i.price });
      while (candles.length && candles[0].start_ms <= start - SLOTS * step) candles.shift();
    }
    drawCandles();
  }
  if (candlesEl) {
    // The server-rendered table is the first data; the API fills in the rest.
    candles = Array.from(candlesEl.querySelectorAll("#candle-table tbody tr")).map((tr) => ({
      start_ms: Number(tr.dataset.startMs), open: Number(tr.dataset.o), high: Number(tr.dataset.h),
      low: Number(tr.dataset.l), close: Number(tr.dataset.c),
    }));
    drawCandles();
    loadCandles();
    setInterval(loadCandles, 30000);
    // The form is submitted with its button (or Enter), never on a mere change of a
    // select, so arrowing through the options from the keyboard does not navigate.
  }

  // Live prices.
  if (window.EventSource) {
    const es = new EventSource("/instruments/stream");
    es.addEventListener("open", () => { status.textContent = "Live: prices update as trades are stored."; });
    es.addEventListener("error", () => { status.textContent = "Connection lost; reconnecting…"; });
    const onEvent = (e) => JSON.parse(e.data).instruments.forEach(apply);
    es.addEventListener("snapshot", onEvent);
    es.addEventListener("update", onEvent);
  }

  // The BTC panel.
  async function refreshBtc() {
    try {
      const cap = await (await fetch("/orders/cap")).json();
      const meter = document.getElementById("cap-meter");
      if (meter) {
        meter.value = cap.used_ratio;
        meter.textContent = cap.used_btc + " BTC";
        document.getElementById("cap-used").textContent = cap.used_btc;
        document.getElementById("cap-cap").textContent = cap.cap_btc;
        document.getElementById("cap-remaining").textContent = cap.remaining_btc;
      }
      const r = await fetch("/orders?limit=10");
      if (!r.ok) return; // rate limited or down: keep what is shown
      const orders = (await r.json()).orders;
      const body = document.querySelector("#orders tbody");
      body.replaceChildren(...orders.map((o) => {
        const tr = document.createElement("tr");
        const placed = document.createElement("time");
        placed.setAttribute("datetime", o.created_at);
        placed.textContent = o.created_at.slice(0, 19).replace("T", " ");
        tr.appendChild(document.createElement("td")).appendChild(placed);
        for (const [v, num] of [[o.currency, false], [o.amount, true], [o.rate, true], [o.btc_amount, true]]) {
          const td = document.createElement("td");
          td.textContent = v;
          if (num) td.className = "num";
          tr.appendChild(td);
        }
        return tr;
      }));
      document.getElementById("no-orders").hidden = orders.length > 0;
    } catch (e) {
      // Offline for a moment: the next refresh tries again.
    }
  }
  setInterval(refreshBtc, 15000);
})();
