"""The page in two languages (index.html + js/i18n.js + i18n/*.json) in headless Chromium.

* Every visible string comes from a catalogue: the page is opened with a pseudo-English
  catalogue whose every literal piece is wrapped in ⟦ ⟧; whatever visible text (or title,
  aria-label, placeholder, tooltip) is left once the wrapped pieces are removed must be a
  number, punctuation or a model/GPU name from presets/*.json.
* ?lang=zh-CN in a fresh browser shows Chinese, with no English word left but the names,
  units and terms of tests/i18n_terms.py.
* Switching the language changes every visible string, keeps every number (data-value of
  every [data-result]) and sends nothing to Python; it is remembered (localStorage) and in
  the link; a first visit follows the browser's language.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from browser_helpers import PAGE_SETTLED as SETTLED, open_page, wait_js  # noqa: E402
from i18n_terms import TERMS  # noqa: E402

pytestmark = pytest.mark.browser

TIMEOUT_MS = 90_000
OPEN, CLOSE = "⟦", "⟧"

# Visible text of the page: text nodes (HTML and the charts' SVG) whose element is rendered,
# the option texts of visible selects, and the text attributes of visible elements.
VISIBLE_TEXT_JS = r"""
() => {
  const out = [];
  const seen = (el) => el && el.checkVisibility({ checkVisibilityCSS: true, checkOpacity: false });
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let n;
  while ((n = walker.nextNode())) {
    const s = n.nodeValue.replace(/\s+/g, " ").trim();
    const p = n.parentElement;
    // translate="no": command lines, config.json field names, a name the user typed (not page text)
    if (!s || !p || p.closest("script, style, option, [translate=no]") || !seen(p)) continue;
    out.push({ where: p.tagName + (p.id ? "#" + p.id : "") + (p.className && typeof p.className === "string" ? "." + p.className : ""), text: s });
  }
  for (const sel of document.querySelectorAll("select")) {
    if (!seen(sel)) continue;
    for (const o of sel.options) out.push({ where: "option", text: o.textContent.trim() });
  }
  for (const el of document.body.querySelectorAll("[title], [aria-label], [placeholder], [data-tip]")) {
    if (!seen(el) || el.closest(".modebar")) continue;   // Plotly's toolbar: its own English tooltips
    for (const a of ["title", "aria-label", "placeholder", "data-tip"]) {
      const v = el.getAttribute(a);
      if (v && v.trim() && !(a === "placeholder" && el.tagName === "TEXTAREA")) out.push({ where: el.tagName + "@" + a, text: v.trim() });
    }
  }
  out.push({ where: "title", text: document.title });
  return out;
}
"""


def preset_names() -> set[str]:
    models = json.loads((ROOT / "presets" / "models.json").read_text(encoding="utf-8"))["models"]
    gpus = json.loads((ROOT / "presets" / "gpus.json").read_text(encoding="utf-8"))["gpus"]
    return {m.get("name", k) for k, m in models.items()} | {g.get("name", k) for k, g in gpus.items()}


NAMES = preset_names() | {"kvcalc", "kvcache-ai/Mooncake"}   # the product; the samples' repository (a link)


def strip_names(text: str) -> str:
    for name in sorted(NAMES, key=len, reverse=True):
        text = text.replace(name, " ")
    return text


def words(text: str) -> set[str]:
    """Latin-letter words in text (model/GPU names and Plotly's %{..} fields removed)."""
    text = re.sub(r"%\{[^}]+\}|--[\w-]+", " ", strip_names(text))
    return set(re.findall(r"[A-Za-z][A-Za-z0-9_\-]*[A-Za-z0-9]|[A-Za-z]", text))


def english_left(items: list[dict]) -> list[tuple[str, str, list[str]]]:
    bad = []
    for it in items:
        text = re.sub(r"“[^”]*”", " ", it["text"])   # a quoted log line ("GPU KV cache size") stays as logged
        w = {x for x in words(text) if x not in TERMS and len(x) > 1 and not re.fullmatch(r"[a-z]+\d+|\d+[A-Za-z]", x)}
        if w:
            bad.append((it["where"], it["text"][:120], sorted(w)))
    return bad


def pseudo(messages: dict) -> dict:
    """Each literal piece between {parameters} wrapped in ⟦ ⟧ (parameters stay as they are)."""
    def wrap(tpl: str) -> str:
        parts = re.split(r"(\{[A-Za-z0-9_]+\}|%\{[^}]+\})", tpl)
        return "".join(p if (p.startswith("{") or p.startswith("%{")) or not p else f"{OPEN}{p}{CLOSE}" for p in parts)
    return {k: wrap(v) for k, v in messages.items()}


@pytest.fixture()
def fresh(browser, server):
    """A new browser context per test (fresh localStorage); locale given by the test."""
    made = []

    def make(locale: str = "en-US", width: int = 1400):
        ctx = browser.new_context(viewport={"width": width, "height": 1000}, locale=locale)
        made.append(ctx)
        return ctx
    yield make
    for c in made:
        c.close()


def all_tabs_text(pg) -> list[dict]:
    """The visible text of each chart tab in turn (their figures computed), curve tab last."""
    items = []
    for tab in ("sweeps", "tornado", "heatmap", "curve"):
        pg.click(f'[role="tab"][data-tab="{tab}"]')
        wait_js(pg, SETTLED + f" && document.querySelector('#chart-{tab}').dataset.rendered", timeout=TIMEOUT_MS)
        wait_js(pg, f"document.querySelector('#chart-{tab} .main-svg')", timeout=TIMEOUT_MS)
        items += pg.evaluate(VISIBLE_TEXT_JS)
    # the trace tab with the synthetic sample analysed: its texts and Python's (counting rule,
    # detection sources, sampling, fit notes) come from the catalogues as message codes
    pg.click('[role="tab"][data-tab="trace"]')
    wait_js(pg, "document.querySelector('#trace-root .kvt')", timeout=TIMEOUT_MS)
    pg.click("#trace-root button[data-sample=synthetic]")
    wait_js(pg, "['done', 'error'].includes(document.getElementById('trace-root').dataset.state)", timeout=TIMEOUT_MS)
    pg.click("#trace-root details summary")                      # the fit notes, opened
    items += pg.evaluate(VISIBLE_TEXT_JS)
    pg.click('[role="tab"][data-tab="curve"]')
    return items


def test_every_visible_string_is_from_a_catalogue(fresh, server):
    ctx = fresh()
    en = json.loads((ROOT / "i18n" / "en.json").read_text(encoding="utf-8"))
    doc = {**en, "messages": pseudo(en["messages"])}
    ctx.route("**/i18n/en.json", lambda route: route.fulfill(status=200, content_type="application/json",
                                                               body=json.dumps(doc, ensure_ascii=False)))
    pg = open_page(ctx, f"{server}?lang=en")
    assert OPEN in pg.inner_text("h2#results-h")                  # the pseudo catalogue is in force
    assert pg.is_visible("#warnings-card")                        # a warning from Python is on screen too
    items = all_tabs_text(pg)
    leftovers = []
    for it in items:
        text = it["text"]
        while re.search(f"{OPEN}[^{OPEN}{CLOSE}]*{CLOSE}", text):
            text = re.sub(f"{OPEN}[^{OPEN}{CLOSE}]*{CLOSE}", " ", text)
        w = words(text)
        if w:
            leftovers.append((it["where"], it["text"][:100], sorted(w)))
    assert not leftovers, "visible text not from a catalogue:\n" + "\n".join(map(str, leftovers))


def test_zh_cn_link_in_a_fresh_browser_is_chinese(fresh, server):
    pg = open_page(fresh("en-US"), f"{server}?lang=zh-CN")
    assert pg.evaluate("document.documentElement.lang") == "zh-CN"
    assert pg.input_value("#lang") == "zh-CN"
    items = all_tabs_text(pg)
    assert any(re.search(r"[\u4e00-\u9fff]", it["text"]) for it in items)
    bad = english_left(items)
    assert not bad, "English left on the Chinese page:\n" + "\n".join(map(str, bad))
    assert not [line for line in pg.console_lines if "catalogue" in line or line.startswith("pageerror")]


def results_snapshot(pg) -> dict:
    return pg.evaluate("""() => Object.fromEntries([...document.querySelectorAll('[data-result]')]
        .map((n, i) => [i + ':' + n.dataset.result, n.dataset.value ?? null]))""")


def visible_by_node(pg) -> list[str]:
    return [it["text"] for it in pg.evaluate(VISIBLE_TEXT_JS)]


def test_switching_language_keeps_numbers_and_changes_every_string(fresh, server):
    ctx = fresh("en-US")
    pg = open_page(ctx, f"{server}?lang=en")
    before_values = results_snapshot(pg)
    assert sum(v is not None for v in before_values.values()) >= 15
    before_text = pg.evaluate(VISIBLE_TEXT_JS)
    requested = pg.evaluate("__kvcalc.requested")
    legend = pg.evaluate("[...document.querySelectorAll('#chart-curve .legendtext')].map(n => n.textContent)")

    pg.select_option("#lang", "zh-CN")
    wait_js(pg, "document.documentElement.lang === 'zh-CN'")
    wait_js(pg, "[...document.querySelectorAll('#chart-curve .legendtext')].some(n => /[\\u4e00-\\u9fff]/.test(n.textContent))")
    assert results_snapshot(pg) == before_values                   # every number kept
    assert pg.evaluate("__kvcalc.requested") == requested          # no recompute
    after_text = pg.evaluate(VISIBLE_TEXT_JS)
    assert not english_left(after_text), english_left(after_text)
    # every English string with words is gone: none of them is still on screen
    after_set = {it["text"] for it in after_text}
    unchanged = [it["text"] for it in before_text
                 if it["text"] in after_set and words(it["text"]) - TERMS]
    assert not unchanged, unchanged
    new_legend = pg.evaluate("[...document.querySelectorAll('#chart-curve .legendtext')].map(n => n.textContent)")
    assert len(new_legend) == len(legend) and not set(new_legend) & set(legend)

    # remembered and in the link; a reload without ?lang stays Chinese
    assert "lang=zh-CN" in pg.url
    assert pg.evaluate("localStorage.getItem('kvcalc:lang')") == "zh-CN"
    pg2 = open_page(ctx, server)
    assert pg2.evaluate("document.documentElement.lang") == "zh-CN"
    assert results_snapshot(pg2) == before_values

    # and back: the English page again, string for string
    pg.select_option("#lang", "en")
    wait_js(pg, "document.documentElement.lang === 'en'")
    assert results_snapshot(pg) == before_values
    assert sorted(it["text"] for it in pg.evaluate(VISIBLE_TEXT_JS)) == sorted(it["text"] for it in before_text)


@pytest.mark.parametrize("locale,expected", [("zh-CN", "zh-CN"), ("zh-TW", "zh-CN"), ("en-GB", "en"), ("fr-FR", "en")])
def test_first_visit_follows_the_browser_language(fresh, server, locale, expected):
    pg = fresh(locale).new_page()
    pg.goto(server)
    wait_js(pg, "window.__kvcalc && __kvcalc.controls", timeout=TIMEOUT_MS)
    wait_js(pg, f"document.documentElement.lang === '{expected}'")
    assert f"lang={expected}" in pg.url


def test_python_error_rendered_in_chinese(fresh, server):
    """A value Python refuses (TP = 3 with 8 KV heads) shows its message from the zh-CN catalogue."""
    pg = open_page(fresh(), f"{server}?lang=zh-CN")
    n = pg.evaluate("__kvcalc.requested")
    pg.fill('#form input[data-param="tensor_parallel"][data-role="box"]', "3")
    wait_js(pg, f"__kvcalc.requested > {n} && __kvcalc.serverErrors['tensor_parallel']", timeout=TIMEOUT_MS)
    msg = pg.inner_text('#form [data-field="tensor_parallel"] .msg')
    assert re.search(r"[\u4e00-\u9fff]", msg) and "3" in msg, msg
    assert not english_left([{"where": "msg", "text": msg}]), msg
    pg.select_option("#lang", "en")
    wait_js(pg, "document.documentElement.lang === 'en'")
    msg_en = pg.inner_text('#form [data-field="tensor_parallel"] .msg')
    assert not re.search(r"[\u4e00-\u9fff]", msg_en) and "3" in msg_en, msg_en
