/* Live line charts in SVG: K.chart(container, series, {store}) returns a chart whose
   add(values) appends a sample and load(points) takes the broker's history (the API's
   samples, see K.history); the last ten minutes are drawn, and kept in sessionStorage
   (store) so a chart survives moving between pages. */
"use strict";

K.chart = (container, series, opts = {}) => {
  const NS = "http://www.w3.org/2000/svg";
  const longest = (opts.minutes || 10) * 60 * 1000;
  let span = longest;
  const key = opts.store ? "kiltmq.chart." + opts.store : null;
  let samples = [];
  if (key) {
    try { samples = JSON.parse(sessionStorage.getItem(key) || "[]"); } catch (e) { samples = []; }
  }
  const box = typeof container === "string" ? K.$(container) : container;
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("class", "chart-svg");
  svg.setAttribute("role", "img");
  const legend = K.el("div", { class: "legend" });
  box.replaceChildren(svg, legend);

  const s = (tag, attrs, text) => {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const nice = (max) => {
    if (max <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(max)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= max) return m * p;
    return 10 * p;
  };
  /* Counts and bytes: ticks on whole numbers (1, 2, 5, 10, 20, 50, ...). */
  const wholeStep = (quarter) => {
    let p = 1;
    for (;;) {
      for (const m of [1, 2, 5]) if (m * p >= quarter) return m * p;
      p *= 10;
    }
  };
  const format = opts.format || K.fmt.rate;
  const axis = opts.format || ((v) => (v === 0 ? "0" : v < 10 ? String(+v.toFixed(2)) : K.fmt.rate(v)));

  const draw = () => {
    const width = Math.max(box.clientWidth || 400, 240), height = opts.height || 170;
    const left = 48, right = 8, top = 8, bottom = 20;
    const now = Date.now();
    const oldest = samples.length ? now - samples[0][0] : 0;
    span = Math.min(longest, Math.max(60000, Math.ceil(oldest / 60000) * 60000));
    const shown = samples.filter((p) => p[0] >= now - span);
    const highest = Math.max(0, ...shown.flatMap((p) => p[1]));
    const top_ = opts.whole ? 4 * wholeStep(highest / 4) : nice(highest);
    const x = (t) => left + (width - left - right) * (1 - (now - t) / span);
    const y = (v) => top + (height - top - bottom) * (1 - v / top_);
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    const parts = [];
    for (let i = 0; i <= 4; i++) {
      const v = (top_ * i) / 4;
      parts.push(s("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), class: "grid" }));
      parts.push(s("text", { x: left - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, axis(v)));
    }
    const step = span <= 60000 ? 10000 : span <= 300000 ? 60000 : 120000;
    for (let t = 0; t <= span; t += step) {
      const label = t === 0 ? "now" : step < 60000 ? `-${t / 1000}s` : `-${t / 60000}m`;
      parts.push(s("text", { x: x(now - t), y: height - 4, class: "axis", "text-anchor": t ? (t === span ? "start" : "middle") : "end" }, label));
    }
    series.forEach((ser, i) => {
      if (shown.length === 0) return;
      const points = shown.map((p) => `${x(p[0]).toFixed(1)},${y(p[1][i] || 0).toFixed(1)}`);
      if (shown.length === 1) points.unshift(`${(x(shown[0][0]) - 2).toFixed(1)},${y(shown[0][1][i] || 0).toFixed(1)}`);
      parts.push(s("polyline", { points: points.join(" "), class: "line c" + i }));
    });
    svg.replaceChildren(...parts);
    svg.setAttribute("aria-label", (opts.label || "chart") + ": " + series.map((ser, i) =>
      `${ser.label} ${format((shown.at(-1) || [0, []])[1][i] || 0)}`).join(", "));
    const last = shown.at(-1);
    K.fill(legend, series.map((ser, i) => K.el("span", { class: "key c" + i },
      K.el("i", {}), ser.label, " ", K.el("b", {}, format(last ? last[1][i] || 0 : 0)))));
  };

  const chart = {
    add(values) {
      const now = Date.now();
      samples.push([now, values.map((v) => Number(v) || 0)]);
      samples = samples.filter((p) => p[0] >= now - longest - 60000);
      if (key) {
        try { sessionStorage.setItem(key, JSON.stringify(samples)); } catch (e) { /* full */ }
      }
      draw();
    },
    /* [[time in ms, values], ...] oldest first, from the broker: they replace what the
       tab had kept up to the newest of them. */
    load(points) {
      if (!points.length) return;
      const newest = points[points.length - 1][0];
      samples = [...points, ...samples.filter((p) => p[0] > newest)];
      if (key) {
        try { sessionStorage.setItem(key, JSON.stringify(samples)); } catch (e) { /* full */ }
      }
      draw();
    },
    draw,
  };
  window.addEventListener("resize", draw);
  draw();
  return chart;
};

/* The broker's history of an object (RabbitMQ's <name>_details.samples, newest first,
   asked for with K.history.query on the first request of a page) as chart points. */
K.history = {
  /* ten minutes every 5 seconds, as RabbitMQ's basic retention */
  query: (...kinds) => "?" + kinds.map((k) => `${k}_age=600&${k}_incr=5`).join("&"),
  lists: (item, names) => names.map((n) => (((item || {})[n + "_details"] || {}).samples) || []),
  /* figures (queue depth): each sample as it is */
  lengths(item, names) {
    const lists = K.history.lists(item, names);
    const longest = lists.reduce((a, l) => (l.length > a.length ? l : a), []);
    const points = [];
    for (let i = longest.length - 1; i >= 0; i--)
      points.push([longest[i].timestamp, lists.map((l) => (l[i] ? l[i].sample : 0))]);
    return points;
  },
  /* counters (messages, bytes): the rate per second between each two samples */
  rates(item, names) {
    const lists = K.history.lists(item, names);
    const longest = lists.reduce((a, l) => (l.length > a.length ? l : a), []);
    const points = [];
    for (let i = longest.length - 2; i >= 0; i--) {
      const seconds = (longest[i].timestamp - longest[i + 1].timestamp) / 1000 || 1;
      points.push([longest[i].timestamp, lists.map((l) =>
        (l[i] && l[i + 1] ? Math.max(0, (l[i].sample - l[i + 1].sample) / seconds) : 0))]);
    }
    return points;
  },
};
