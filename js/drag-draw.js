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
// moveTraces(div, fig) -> true when drawn here; false (nothing changed) when it cannot be:
// a trace that is not a plain scatter on cartesian axes, a drawn element missing, a marker or
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

// Plans every trace's new drawing first; changes the page only when all of them can be drawn.
export function moveTraces(div, fig) {
  const full = div._fullLayout;
  const fullData = div._fullData;
  if (!full || !Array.isArray(fullData) || fullData.length !== fig.data.length || !Array.isArray(div.data)) return false;
  const plan = [];
  for (let i = 0; i < fig.data.length; i++) {
    const d = fig.data[i];
    const fd = fullData[i];
    if (d.type !== "scatter" || fd.type !== "scatter" || fd.visible !== true) return false;
    const axes = axesOf(full, fd);
    if (!axes) return false;
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
  for (const { i, d, lines, paths, points, pts } of plan) {
    if (lines) lines.forEach((el, k) => el.setAttribute("d", paths[k]));
    if (points) points.forEach((el, k) => el.setAttribute("transform", `translate(${pts[k][0]},${pts[k][1]})`));
    const target = div.data[i];
    target.x = d.x;
    target.y = d.y;
    if (d.text !== undefined) target.text = d.text;
  }
  return true;
}
