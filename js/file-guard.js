// A classic (non-module) script, so it still runs from file://, where module scripts and
// workers are blocked: replace the page with instructions instead of failing silently.
// Include it first: <script src="js/file-guard.js"></script>
(function () {
  if (location.protocol !== "file:") return;
  var msg = "kvcalc cannot run from a file:// URL (browsers block module workers there). " +
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
