/* fmbuild: sortable tables and the Edition selector. No network access except versions.json,
   read from this site itself. */
(function () {
  "use strict";

  function cellValue(row, index, numeric) {
    var cell = row.children[index];
    if (!cell) return numeric ? -Infinity : "";
    var raw = cell.getAttribute("data-value");
    if (raw === null) raw = cell.textContent.trim();
    if (numeric) { var n = parseFloat(raw); return isNaN(n) ? -Infinity : n; }
    return raw.toLowerCase();
  }

  function makeSortable(table) {
    var heads = table.querySelectorAll("thead th");
    Array.prototype.forEach.call(heads, function (th, index) {
      th.setAttribute("tabindex", "0");
      var sort = function () {
        var numeric = th.getAttribute("data-sort") === "number";
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = cellValue(a, index, numeric), y = cellValue(b, index, numeric);
          return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      };
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") sort(); });
    });
  }

  function siteRoot() {
    var script = document.querySelector('script[src*="assets/fmbuild/fmbuild.js"]');
    return script ? new URL("../../", script.src) : new URL("/", location.href);
  }

  function versionSelector() {
    var topic = document.querySelector(".md-header__topic");
    if (!topic || !window.fetch) return;
    var root = siteRoot();
    fetch(new URL("versions.json", root).href).then(function (r) {
      return r.ok ? r.json() : [];
    }).then(function (versions) {
      if (!Array.isArray(versions) || versions.length < 2) return;
      var box = document.createElement("div");
      box.className = "md-version fm-version";
      var current = document.createElement("button");
      current.className = "md-version__current";
      current.setAttribute("aria-label", "Select version");
      current.textContent = versions[0].title;
      var list = document.createElement("ul");
      list.className = "md-version__list";
      versions.forEach(function (v) {
        var item = document.createElement("li");
        item.className = "md-version__item";
        var link = document.createElement("a");
        link.className = "md-version__link";
        link.href = new URL(v.version === "." ? "./" : v.version + "/", root).href;
        link.textContent = v.title;
        item.appendChild(link);
        list.appendChild(item);
      });
      box.appendChild(current);
      box.appendChild(list);
      topic.appendChild(box);
    }).catch(function () { /* no versions.json: no selector */ });
  }

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll("table.fm-sortable"), makeSortable);
    versionSelector();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
