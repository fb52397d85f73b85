// A classic (non-module) script, so it still runs from file://, where module scripts and
// workers are blocked: replace the page with instructions instead of failing silently.
// Include it first: <script src="js/file-guard.js"></script>
(function () {
  if (location.protocol !== "file:") return;
  // The catalogues (i18n/*.json) cannot be fetched from file://: this one message carries its
  // two languages itself, chosen like js/i18n.js chooses (?lang=, then the browser's language).
  var q = /[?&]lang=([^&]*)/.exec(location.search);
  var zh = q ? q[1] === "zh-CN" : /^zh/i.test(navigator.language || "");
  var msg = zh
    ? "kvcalc 无法从 file:// 地址运行（浏览器在这里禁止模块 Worker）。" +
      "请通过 HTTP 提供该文件夹：python scripts/serve.py，然后打开 http://127.0.0.1:8000/"
    : "kvcalc cannot run from a file:// URL (browsers block module workers there). " +
      "Serve the folder over HTTP: python scripts/serve.py, then open http://127.0.0.1:8000/";
  window.KVCALC_FILE_PROTOCOL = msg;
  document.addEventListener("DOMContentLoaded", function () {
    var p = document.createElement("p");
    p.id = "kvcalc-file-protocol";
    p.setAttribute("role", "alert");
    p.style.cssText = "font:16px sans-serif;padding:1em;border:2px solid #b00;margin:1em";
    p.textContent = msg;
    document.body.prepend(p);
  });
})();
