/* fmbuild: the interactive graph, drawn with the vendored Cytoscape.js (no CDN).
   Data: the JSON in #fm-graph-data ({nodes:[{id,label,type,url,maturity}], edges:[{source,target,type}]}).
   Pan: drag; zoom: wheel; filter: the type checkboxes; search: dims what does not match;
   click a node: open its page; ?focus=<node id> centres on one node and its neighbours. */
(function () {
  "use strict";
  var COLORS = {
    technique: "#e53935", pattern: "#43a047", "anti-pattern": "#fb8c00", playbook: "#1e88e5",
    source: "#8e24aa", note: "#78909c", module: "#546e7a", framework: "#fdd835"
  };
  var EDGE_COLORS = {
    mitigates: "#43a047", enables: "#e53935", covers: "#1e88e5", applies: "#3949ab",
    "evidenced-by": "#546e7a", "maps-to": "#c0ca33", "links-to": "#b0bec5"
  };

  function init() {
    var holder = document.getElementById("fm-graph-canvas");
    var source = document.getElementById("fm-graph-data");
    var status = document.querySelector(".fm-graph__status");
    if (!holder || !source) return;
    if (typeof window.cytoscape !== "function") {
      if (status) status.textContent = "The graph library did not load.";
      return;
    }
    var data = JSON.parse(source.textContent);
    var known = {};
    var elements = [];
    data.nodes.forEach(function (n) {
      known[n.id] = true;
      elements.push({ group: "nodes", data: {
        id: n.id, label: n.label, type: n.type, url: n.url, maturity: n.maturity,
        color: COLORS[n.type] || COLORS.note } });
    });
    data.edges.forEach(function (e, i) {
      if (!known[e.source] || !known[e.target]) return;
      elements.push({ group: "edges", data: {
        id: "e" + i, source: e.source, target: e.target, type: e.type,
        color: EDGE_COLORS[e.type] || "#b0bec5" } });
    });
    var cy = window.cytoscape({
      container: holder,
      elements: elements,
      wheelSensitivity: 0.3,
      minZoom: 0.05,
      maxZoom: 4,
      style: [
        { selector: "node", style: {
          "background-color": "data(color)", label: "data(label)", "font-size": 9,
          "text-valign": "bottom", "text-margin-y": 3, color: "#546e7a", width: 14, height: 14,
          "text-max-width": 120, "text-wrap": "ellipsis", "min-zoomed-font-size": 6 } },
        { selector: "node[type = 'module']", style: { shape: "round-rectangle" } },
        { selector: "node[type = 'framework']", style: { shape: "diamond" } },
        { selector: "edge", style: {
          width: 1.2, "line-color": "data(color)", "target-arrow-color": "data(color)",
          "target-arrow-shape": "triangle", "arrow-scale": 0.7, "curve-style": "bezier", opacity: 0.8 } },
        { selector: ".fm-dim", style: { opacity: 0.12 } },
        { selector: ".fm-hit", style: { "border-width": 3, "border-color": "#ffb300" } },
        /* hovering a node names it and its neighbours at any zoom */
        { selector: ".fm-hover", style: { "min-zoomed-font-size": 0, "font-size": 12, color: "#263238",
          "text-background-color": "#ffffff", "text-background-opacity": 0.85, "text-background-padding": 2,
          "z-index": 10, "text-max-width": 220 } }
      ],
      layout: { name: "preset" }
    });
    window.fmGraph = cy;  /* for tests and for the curious */

    function visibleTypes() {
      var on = {};
      Array.prototype.forEach.call(document.querySelectorAll(".fm-graph__filter input"), function (box) {
        on[box.value] = box.checked;
      });
      return on;
    }
    function applyFilter() {
      var on = visibleTypes();
      cy.batch(function () {
        cy.nodes().forEach(function (n) { n.style("display", on[n.data("type")] === false ? "none" : "element"); });
      });
      report();
    }
    function report() {
      if (!status) return;
      var shown = cy.nodes().filter(function (n) { return n.style("display") !== "none"; });
      status.textContent = shown.length + " of " + cy.nodes().length + " nodes shown, " + cy.edges().length + " edges.";
      holder.setAttribute("data-rendered-nodes", String(shown.length));
    }
    Array.prototype.forEach.call(document.querySelectorAll(".fm-graph__filter input"), function (box) {
      box.addEventListener("change", applyFilter);
    });
    var search = document.querySelector(".fm-graph__search");
    if (search) {
      search.addEventListener("input", function () {
        var q = search.value.trim().toLowerCase();
        cy.batch(function () {
          cy.elements().removeClass("fm-dim fm-hit");
          if (!q) return;
          var hits = cy.nodes().filter(function (n) { return String(n.data("label")).toLowerCase().indexOf(q) >= 0; });
          cy.elements().not(hits.closedNeighborhood()).addClass("fm-dim");
          hits.addClass("fm-hit");
        });
      });
    }
    var fit = document.querySelector(".fm-graph__fit");
    if (fit) fit.addEventListener("click", function () { cy.fit(cy.nodes(":visible"), 30); });

    cy.on("mouseover", "node", function (evt) { evt.target.closedNeighborhood("node").addClass("fm-hover"); });
    cy.on("mouseout", "node", function () { cy.nodes().removeClass("fm-hover"); });
    if (search) {
      /* Enter: go to what the search found, with its neighbours */
      search.addEventListener("keydown", function (e) {
        if (e.key !== "Enter") return;
        var hits = cy.nodes(".fm-hit");
        if (hits.nonempty()) { cy.fit(hits.closedNeighborhood(), 60); if (cy.zoom() > 2) { cy.zoom(2); cy.center(hits); } }
      });
    }
    legend();

    cy.on("tap", "node", function (evt) {
      var url = evt.target.data("url");
      if (!url) return;
      if (/^https?:/i.test(url)) window.open(url, "_blank", "noopener");
      else window.location.href = url;
    });

    applyFilter();
    var layout = cy.layout({ name: "preset", positions: bands(cy), fit: false, animate: false });
    layout.one("layoutstop", function () {
      var focus = new URLSearchParams(window.location.search).get("focus");
      var node = focus ? cy.getElementById(focus) : null;
      if (node && node.nonempty()) {
        cy.elements().not(node.closedNeighborhood()).addClass("fm-dim");
        node.addClass("fm-hit");
        cy.fit(node.closedNeighborhood(), 60);
      } else {
        cy.fit(cy.nodes(":visible"), 30);
      }
      if (cy.zoom() > 1.6) { cy.zoom(1.6); cy.center(node && node.nonempty() ? node : undefined); }
      holder.setAttribute("data-ready", "true");
      report();
    });
    layout.run();
  }
  /* The legend: what each colour means, built from the colours the graph uses. */
  function legend() {
    var box = document.querySelector(".fm-graph__legend");
    if (!box) return;
    function add(colors, label, kind) {
      var list = document.createElement("ul");
      list.className = "fm-graph__legend-" + kind;
      var title = document.createElement("li");
      title.className = "fm-graph__legend-title";
      title.textContent = label;
      list.appendChild(title);
      Object.keys(colors).forEach(function (name) {
        var item = document.createElement("li");
        var swatch = document.createElement("span");
        swatch.className = "fm-graph__swatch fm-graph__swatch--" + kind;
        swatch.style.backgroundColor = colors[name];
        item.appendChild(swatch);
        item.appendChild(document.createTextNode(" " + name));
        list.appendChild(item);
      });
      box.appendChild(list);
    }
    add(COLORS, "Nodes", "node");
    add(EDGE_COLORS, "Edges", "edge");
  }

  /* A layout that separates the kinds of node: one column per kind, playbooks | techniques |
     controls | anti-patterns | evidence | frameworks and the rest, each column ordered by where
     its neighbours sit (two sweeps of the barycentre heuristic), so that edges cross less. */
  var BAND = { playbook: 0, "command-sheet": 0, technique: 1, pattern: 2, "anti-pattern": 3, module: 4,
               source: 5, note: 5, framework: 6 };
  function bands(cy) {
    var columns = [[], [], [], [], [], [], []];
    cy.nodes().forEach(function (n) {
      var band = Object.prototype.hasOwnProperty.call(BAND, n.data("type")) ? BAND[n.data("type")] : 5;
      columns[band].push(n);
    });
    columns.forEach(function (c) { c.sort(function (a, b) { return a.data("label") < b.data("label") ? -1 : 1; }); });
    var rank = {};
    function ranks() { columns.forEach(function (c) { c.forEach(function (n, i) { rank[n.id()] = i / Math.max(1, c.length - 1); }); }); }
    ranks();
    for (var sweep = 0; sweep < 2; sweep++) {
      columns.forEach(function (c) {
        c.forEach(function (n) {
          var near = n.neighborhood("node"), sum = 0;
          near.forEach(function (m) { sum += rank[m.id()]; });
          n.scratch("_fm", near.length ? sum / near.length : rank[n.id()]);
        });
        c.sort(function (a, b) { return a.scratch("_fm") - b.scratch("_fm"); });
      });
      ranks();
    }
    var positions = {};
    /* centred on the columns shown by default (the framework column starts hidden) */
    var tallest = Math.max.apply(null, columns.slice(0, 6).map(function (c) { return c.length; }));
    columns.forEach(function (c, x) {
      var step = 44, offset = (tallest - c.length) * step / 2;
      c.forEach(function (n, y) { positions[n.id()] = { x: x * 260, y: offset + y * step }; });
    });
    return function (n) { return positions[n.id()]; };
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
