/* fmbuild: sortable tables, the Edition selector and link previews. No network access except
   versions.json and the pages a preview shows, read from this site itself. */
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

  /* Link previews: hovering (or focusing) a link to another page of this site shows that page's
     title and first paragraph, as Obsidian and Quartz readers expect. The page is fetched from
     this site only, parsed inertly (DOMParser runs no script), and only its text is shown. */
  var previews = {};
  var tip = null, timer = null, shownFor = null;

  function previewText(href) {
    if (!previews[href]) {
      previews[href] = fetch(href, { credentials: "same-origin" }).then(function (r) {
        return r.ok ? r.text() : "";
      }).then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var article = doc.querySelector("article.md-content__inner") || doc.querySelector("article");
        if (!article) return null;
        var h1 = article.querySelector("h1");
        var para = null;
        Array.prototype.some.call(article.querySelectorAll("p"), function (p) {
          if (p.closest(".fm-meta, .admonition, details, table, nav")) return false;
          var text = p.textContent.replace(/\s+/g, " ").trim();
          if (text.length < 20) return false;
          para = text;
          return true;
        });
        return { title: h1 ? h1.textContent.replace(/\s+/g, " ").replace(/\u00b6$/, "").trim() : "", text: para || "" };
      }).catch(function () { return null; });
    }
    return previews[href];
  }

  function hidePreview() {
    clearTimeout(timer);
    shownFor = null;
    if (tip) tip.hidden = true;
  }

  function showPreview(link) {
    var target = new URL(link.href, location.href);
    var here = new URL(location.href);
    target.hash = ""; here.hash = "";
    if (target.origin !== location.origin || target.href === here.href) return;
    clearTimeout(timer);
    timer = setTimeout(function () {
      shownFor = link;
      previewText(target.href).then(function (data) {
        if (shownFor !== link || !data || (!data.title && !data.text)) return;
        if (!tip) {
          tip = document.createElement("div");
          tip.className = "fm-preview";
          tip.setAttribute("role", "tooltip");
          tip.id = "fm-preview";
          document.body.appendChild(tip);
        }
        tip.textContent = "";
        var title = document.createElement("strong");
        title.className = "fm-preview__title";
        title.textContent = data.title;
        var text = document.createElement("p");
        text.className = "fm-preview__text";
        text.textContent = data.text.length > 320 ? data.text.slice(0, 317) + "..." : data.text;
        tip.appendChild(title);
        tip.appendChild(text);
        var box = link.getBoundingClientRect();
        tip.style.left = Math.max(8, Math.min(box.left + window.scrollX, window.scrollX + document.documentElement.clientWidth - 360)) + "px";
        tip.style.top = (box.bottom + window.scrollY + 6) + "px";
        tip.hidden = false;
        link.setAttribute("aria-describedby", "fm-preview");
      });
    }, 250);
  }

  function linkPreviews() {
    if (!window.fetch || !window.DOMParser) return;
    var content = document.querySelector("article.md-content__inner");
    if (!content) return;
    content.addEventListener("mouseover", function (e) {
      var link = e.target.closest && e.target.closest("a[href]");
      if (link && !link.closest(".headerlink")) showPreview(link);
    });
    content.addEventListener("mouseout", function (e) {
      var link = e.target.closest && e.target.closest("a[href]");
      if (link && !link.contains(e.relatedTarget)) hidePreview();
    });
    content.addEventListener("focusin", function (e) {
      if (e.target.matches && e.target.matches("a[href]")) showPreview(e.target);
    });
    content.addEventListener("focusout", hidePreview);
    document.addEventListener("keydown", function (e) { if (e.key === "Escape") hidePreview(); });
  }

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll("table.fm-sortable"), makeSortable);
    versionSelector();
    linkPreviews();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
