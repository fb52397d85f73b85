// Export: the request and result as JSON, the visible chart's data as CSV (text built by
// Python: kvcalc.export, asked with compute(..., export: true)), the chart as PNG or SVG
// through Plotly's own export (offline), and a plain-text summary (Python's message codes
// rendered from the catalogue, so it is in the page's language). JavaScript only saves files.

import { el } from "./ui.js";
import { t, setText, renderMessage, lang } from "./i18n.js";

const CSV_FIGURES = ["curve", "sweeps", "tornado", "heatmap"];

export function saveText(text, filename, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = el("a", { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function summaryText(result) {
  return (result.summary_details || []).map((d) => renderMessage(d)).join("\n") + "\n";
}

// app: the page object (window.__kvcalc): result, resultRequest, client, plotly, tab.
export function mountExport(bar, app) {
  const status = el("span", { class: "muted small", role: "status", "aria-live": "polite", id: "export-status" });
  const button = (key, id, onClick) => {
    const b = setText(el("button", { type: "button", id, class: "small-button" }), key);
    b.addEventListener("click", async () => {
      if (!app.result) return;
      status.textContent = "";
      delete status.dataset.i18n;
      try { await onClick(); } catch (err) { setText(status, "res.exp.failed", { detail: String(err.message || err) }); }
    });
    return b;
  };
  const stamp = () => `kvcalc-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-")}`;
  const chartTab = () => (CSV_FIGURES.includes(app.tab) ? app.tab : "curve");   // CSV of the visible figure

  bar.replaceChildren(
    setText(el("span", { class: "export-label" }), "res.exp.title"),
    button("res.exp.json", "export-json", () => saveText(
      JSON.stringify({ request: app.resultRequest, result: app.result, lang: lang() }, null, 1),
      `${stamp()}.json`, "application/json")),
    button("res.exp.csv", "export-csv", async () => {
      if (app.tab === "trace") {   // the trace's exact curve, CSV text from Python (kvcalc.export)
        const res = app.traceTab && app.traceTab.result;
        if (!res || !res.curve_csv) throw new Error(t("res.exp.no_trace"));
        saveText(res.curve_csv, `${stamp()}-trace-curve.csv`, "text/csv");
        setText(status, "res.exp.done");
        return;
      }
      const name = chartTab();
      setText(status, "res.exp.busy");
      const req = { ...app.resultRequest, figures: [...new Set(["curve", name])], export: true };
      const reply = await app.client.call("compute", [req]);
      const res = reply && reply.status === "ok" ? reply.result : null;
      const result = res && res.ok !== undefined ? (res.ok ? res.result : null) : res;
      if (!result || !result.export) {
        const err = (reply && reply.error) || (res && res.error);
        throw new Error(err ? renderMessage(err, { withField: true }) : t("res.exp.no_csv"));
      }
      saveText(result.export.csv[name], `${stamp()}-${name}.csv`, "text/csv");
      if (result.export.csv.recommender) saveText(result.export.csv.recommender, `${stamp()}-recommender.csv`, "text/csv");
      setText(status, "res.exp.done");
    }),
    button("res.exp.png", "export-png", () => image("png")),
    button("res.exp.svg", "export-svg", () => image("svg")),
    button("res.exp.summary", "export-summary", () => saveText(summaryText(app.result), `${stamp()}-summary.txt`, "text/plain")),
    status,
  );

  // The visible tab's chart (the trace tab: its curve chart) through Plotly's own export.
  async function image(format) {
    const div = app.tab === "trace" ? document.querySelector("#trace-root .js-plotly-plot")
                                    : document.getElementById(`chart-${app.tab}`);
    if (!app.plotly || !div || !div.data) throw new Error(t("res.exp.no_chart"));
    await app.plotly.downloadImage(div, { format, filename: `${stamp()}-${app.tab}`, width: div.clientWidth || 800,
                                          height: div.clientHeight || 450 });
  }
}
