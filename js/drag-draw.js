// A drag render's chart drawn without Plotly's update machinery.
//
// Why: while a slider moves, each drag render changes only the traces' x and y (figures.js
// drawFigure decides that). Plotly.animate or Plotly.react would run Plotly's supplyDefaults
// and calc over every trace first (about 13 ms on the curve, 25 ms on the 7 sweep subplots, on
// a 2-core machine), which with Python's time overran the 33 ms a drag render may take. Here
// the SVG Plotly drew is moved in place: each scatter trace's line path and marker positions
// are rewritten from the axes' own data -> pixel maps (Plotly's ax.c2p on the ranges on
// screen). Nothing is computed but pixels; the axes, ticks, legend and hover layer stay as they
// are. gd.data gets the new x/y/text (what a test or a later Plotly call reads). Plotly's hover
// data (calcdata) keeps the previous drawing's points until the release, which draws the full
// figure through Plotly.react again (drawFigure marks the chart so that react recalculates).
//
// A heatmap's image is drawn again from its cells (drawHeatmap), a contour hidden (below).
//
// moveTraces(div, fig) -> true when drawn here; false (nothing changed) when it cannot be:
// a trace that is not a scatter, heatmap or contour on cartesian axes, uneven heatmap cells, a drawn element missing, a marker or
// segment count changed, a point with no place on its axis (the caller falls back to Plotly).
// Re-ranging an axis is Plotly's (figures.js drawFigure relayouts it first).

function fmt(v) {
  return Math.round(v * 100) / 100;
}

// A trace's points in pixels of its subplot, segments split at nulls; null when a point has no
// place on the axes (a log axis and a value <= 0). Points beyond the ranges on screen are
// drawn there and clipped by the plot area, like Plotly's (cliponaxis).
function pixelSegments(xs, ys, xa, ya) {
  const segs = [];
  let cur = null;
  const n = Math.min(xs.length, ys.length);
  for (let i = 0; i < n; i++) {
    const x = xs[i];
    const y = ys[i];
    if (x === null || y === null || x === undefined || y === undefined) { cur = null; continue; }
    const px = xa.c2p(x);
    const py = ya.c2p(y);
    if (!Number.isFinite(px) || !Number.isFinite(py)) return null;
    if (!cur) { cur = []; segs.push(cur); }
    cur.push([fmt(px), fmt(py)]);
  }
  return segs;
}

function axesOf(full, trace) {
  const xid = trace.xaxis || "x";
  const yid = trace.yaxis || "y";
  const xa = full[`xaxis${xid.slice(1)}`];
  const ya = full[`yaxis${yid.slice(1)}`];
  return xa && ya && typeof xa.c2p === "function" && typeof ya.c2p === "function" ? { xa, ya } : null;
}

// A heatmap's cells drawn one canvas pixel each, the image stretched over the cells' pixel
// bounds and not smoothed (image-rendering: pixelated): possible when the cells are even in
// pixels (a log-spaced grid on a log axis, kvcalc.sweeps), within half a pixel. A cell's edges
// are halfway between the pixel centres of neighbouring cells, the outer ones half a cell out
// (where Plotly puts them). Colours: the trace's colour scale (Plotly's, with its stops) over
// [zmin, zmax], interpolated in RGB between stops as Plotly does.
function evenBounds(centres) {
  const n = centres.length;
  if (n < 2 || !centres.every(Number.isFinite)) return null;
  const step = (centres[n - 1] - centres[0]) / (n - 1);
  if (!(Math.abs(step) > 0) || centres.some((c, i) => Math.abs(c - (centres[0] + i * step)) > 0.5)) return null;
  return [centres[0] - step / 2, centres[n - 1] + step / 2];
}

function hexRgb(color) {
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(color);
  return m ? [parseInt(m[1], 16), parseInt(m[2], 16), parseInt(m[3], 16)] : null;
}

function colorFn(fd) {
  const stops = Array.isArray(fd.colorscale) ? fd.colorscale.map(([f, c]) => [Number(f), hexRgb(c)]) : [];
  if (stops.length < 2 || stops.some(([f, c]) => !c || !Number.isFinite(f))) return null;
  const lo = fd.zmin;
  const hi = fd.zmax;
  if (!Number.isFinite(lo) || !Number.isFinite(hi) || !(hi > lo)) return null;
  return (v) => {
    const f = Math.min(1, Math.max(0, (v - lo) / (hi - lo)));
    let k = 1;
    while (k < stops.length - 1 && stops[k][0] < f) k++;
    const [f0, c0] = stops[k - 1];
    const [f1, c1] = stops[k];
    const u = f1 > f0 ? (f - f0) / (f1 - f0) : 0;
    return [0, 1, 2].map((j) => c0[j] + (c1[j] - c0[j]) * u);
  };
}

function planHeatmap(div, d, fd, axes, index) {
  const groups = [...div.querySelectorAll("g.hm")].filter((g) => !g.closest("g.contour"));
  const image = groups[index] && groups[index].querySelector("image");
  const color = colorFn(fd);
  if (!image || !color || !Array.isArray(d.x) || !Array.isArray(d.y) || !Array.isArray(d.z)) return null;
  const xb = evenBounds(d.x.map((v) => axes.xa.c2p(v)));
  const yb = evenBounds(d.y.map((v) => axes.ya.c2p(v)));
  if (!xb || !yb || d.z.length !== d.y.length || d.z.some((row) => !Array.isArray(row) || row.length !== d.x.length)) return null;
  return { image, d, color, xb, yb };
}

function drawHeatmap({ image, d, color, xb, yb }) {
  const n = d.x.length;
  const m = d.y.length;
  const canvas = document.createElement("canvas");
  canvas.width = n;
  canvas.height = m;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(n, m);
  // image row 0 is the top of the picture: the y cell drawn highest (y pixels grow downwards)
  const top = yb[0] < yb[1] ? 0 : m - 1;
  const left = xb[0] < xb[1] ? 0 : n - 1;
  for (let j = 0; j < m; j++) {
    const row = top === 0 ? j : m - 1 - j;
    for (let i = 0; i < n; i++) {
      const col = left === 0 ? i : n - 1 - i;
      const v = d.z[j][i];
      const o = 4 * (row * n + col);
      if (typeof v !== "number" || !Number.isFinite(v)) continue;   // transparent, as Plotly leaves it
      const [r, g, b] = color(v);
      img.data[o] = r;
      img.data[o + 1] = g;
      img.data[o + 2] = b;
      img.data[o + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
  image.setAttribute("x", String(Math.min(xb[0], xb[1])));
  image.setAttribute("y", String(Math.min(yb[0], yb[1])));
  image.setAttribute("width", String(Math.abs(xb[1] - xb[0])));
  image.setAttribute("height", String(Math.abs(yb[1] - yb[0])));
  image.setAttribute("href", canvas.toDataURL("image/png"));
  image.removeAttribute("xlink:href");
  image.style.imageRendering = "pixelated";
}

// A contour trace is not redrawn during a drag (its lines are Plotly's to trace): hidden until
// the next full drawing (showHidden, figures.js drawFigure before Plotly.react).
const HIDDEN = "data-drag-hidden";

export function showHidden(div) {
  for (const g of div.querySelectorAll(`[${HIDDEN}]`)) {
    g.removeAttribute(HIDDEN);
    g.style.display = "";
  }
}

// Plans every trace's new drawing first; changes the page only when all of them can be drawn.
export function moveTraces(div, fig) {
  const full = div._fullLayout;
  const fullData = div._fullData;
  if (!full || !Array.isArray(fullData) || fullData.length !== fig.data.length || !Array.isArray(div.data)) return false;
  const plan = [];
  let heatmaps = 0;
  let contours = 0;
  for (let i = 0; i < fig.data.length; i++) {
    const d = fig.data[i];
    const fd = fullData[i];
    if (d.type !== fd.type || fd.visible !== true) return false;
    const axes = axesOf(full, fd);
    if (!axes) return false;
    if (d.type === "heatmap") {
      const heat = planHeatmap(div, d, fd, axes, heatmaps++);
      if (!heat) return false;
      plan.push({ i, d, heat });
      continue;
    }
    if (d.type === "contour") {
      const g = div.querySelectorAll("g.contour")[contours++];
      if (!g) return false;
      plan.push({ i, d, hide: g });
      continue;
    }
    if (d.type !== "scatter") return false;
    const group = div.querySelector(`g.trace${CSS.escape(fd.uid)}`);
    if (!group) return false;
    const segs = pixelSegments(d.x, d.y, axes.xa, axes.ya);
    if (!segs) return false;
    const mode = fd.mode || "";
    const step = { i, d };
    if (mode.includes("lines")) {
      // one path per segment (a line broken by nulls: the tornado's bars); a segment of fewer
      // than 2 points Plotly draws its own way
      const lines = group.querySelectorAll("path.js-line");
      if (lines.length !== segs.length || segs.some((s) => s.length < 2)) return false;
      step.lines = lines;
      step.paths = segs.map((s) => `M${s.join("L")}`);
    }
    if (mode.includes("markers")) {
      const points = group.querySelectorAll("path.point");
      const pts = segs.flat();
      if (points.length !== pts.length) return false;
      step.points = points;
      step.pts = pts;
    }
    plan.push(step);
  }
  for (const { i, d, lines, paths, points, pts, heat, hide } of plan) {
    if (lines) lines.forEach((el, k) => el.setAttribute("d", paths[k]));
    if (points) points.forEach((el, k) => el.setAttribute("transform", `translate(${pts[k][0]},${pts[k][1]})`));
    if (heat) drawHeatmap(heat);
    if (hide) {
      hide.setAttribute(HIDDEN, "");
      hide.style.display = "none";
    }
    const target = div.data[i];
    target.x = d.x;
    target.y = d.y;
    if (d.z !== undefined) target.z = d.z;
    if (d.text !== undefined) target.text = d.text;
  }
  return true;
}
