// ttscale trace viewer: builds the page from the embedded trace JSON. Text from the trace only ever goes
// through textContent, so nothing a model wrote can become markup.
(function () {
  "use strict";
  var doc = JSON.parse(document.getElementById("trace-data").textContent);
  var events = Array.isArray(doc.trace) ? doc.trace : [];

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmt(x) {
    if (typeof x !== "number") return x === null || x === undefined ? "–" : String(x);
    if (Number.isInteger(x)) return Math.abs(x) >= 1e6 ? x.toExponential(3) : String(x);
    return Math.abs(x) >= 1e5 || (x !== 0 && Math.abs(x) < 1e-3) ? x.toExponential(3) : x.toFixed(3);
  }
  function excerpt(s, n) {
    s = String(s || "").replace(/\s+/g, " ").trim();
    return s.length > n ? s.slice(0, n - 1) + "…" : s;
  }

  // -- summary -------------------------------------------------------------------------------------------
  var header = document.getElementById("summary");
  header.appendChild(el("h1", null, "ttscale · " + (doc.strategy || "solve") + (doc.model ? " · " + doc.model : "")));
  if (doc.question) header.appendChild(el("div", "question", doc.question));
  var usage = doc.usage || {};
  var facts = [
    ["answer", doc.answer], ["confidence", doc.confidence], ["completion tokens", usage.completion_tokens],
    ["prompt tokens computed", usage.prompt_tokens], ["prompt tokens cached", usage.cached_prompt_tokens],
    ["FLOPs", usage.flops], ["wall s", doc.wall_seconds]
  ];
  var dl = el("dl");
  facts.forEach(function (f) {
    if (f[1] === undefined) return;
    var kv = el("div", "kv");
    kv.appendChild(el("dt", null, f[0]));
    kv.appendChild(el("dd", null, fmt(f[1])));
    dl.appendChild(kv);
  });
  header.appendChild(dl);

  // -- details panel -------------------------------------------------------------------------------------
  var details = document.getElementById("details");
  var selected = null;
  function select(labelEl, title, rows, text, extraText) {
    if (selected) selected.classList.remove("selected");
    selected = labelEl;
    if (labelEl) labelEl.classList.add("selected");
    details.textContent = "";
    details.appendChild(el("h3", null, title));
    var table = el("table", "facts");
    rows.forEach(function (r) {
      var tr = el("tr");
      tr.appendChild(el("th", null, r[0]));
      tr.appendChild(el("td", null, r[1]));
      table.appendChild(tr);
    });
    details.appendChild(table);
    if (text !== undefined) {
      details.appendChild(el("h4", null, "Text"));
      details.appendChild(el("pre", "node-text", text));
    }
    if (extraText) {
      details.appendChild(el("h4", null, extraText[0]));
      details.appendChild(el("pre", null, extraText[1]));
    }
  }

  // -- search tree ---------------------------------------------------------------------------------------
  var nodes = events.filter(function (e) { return e.kind === "node"; });
  var byId = {};
  nodes.forEach(function (n) { byId[n.id] = { node: n, children: [] }; });
  var roots = [];
  nodes.forEach(function (n) {
    var parent = n.parent === null || n.parent === undefined ? null : byId[n.parent];
    if (parent) parent.children.push(byId[n.id]); else roots.push(byId[n.id]);
  });
  var choice = events.filter(function (e) { return e.kind === "choice"; }).pop();
  var onPath = {};
  if (choice && Array.isArray(choice.path)) {
    choice.path.forEach(function (id) { onPath[id] = true; });
    roots.forEach(function (r) { if (choice.path.length) onPath[r.node.id] = true; });
  }
  var KNOWN = ["kind", "id", "parent", "depth", "step", "finish_reason", "tokens", "terminal", "scores",
               "score", "visits", "value", "status"];

  function pathText(id) {
    var parts = [];
    for (var cur = byId[id]; cur; cur = byId[cur.node.parent]) parts.unshift(cur.node.step || "");
    return parts.filter(function (s) { return s; }).join("\n\n");
  }

  function setOpen(li, open) {
    var ul = li.querySelector(":scope > ul");
    var btn = li.querySelector(":scope > .row > .toggle");
    if (!ul) return;
    ul.hidden = !open;
    btn.textContent = open ? "▾" : "▸";
    btn.setAttribute("aria-expanded", open ? "true" : "false");
  }

  function buildNode(entry) {
    var n = entry.node;
    var li = el("li", "node" + (onPath[n.id] ? " on-path" : ""));
    li.setAttribute("role", "treeitem");
    li.dataset.id = n.id;
    var row = el("div", "row");
    var btn = el("button", "toggle", entry.children.length ? "▸" : "");
    btn.type = "button";
    btn.disabled = !entry.children.length;
    btn.setAttribute("aria-label", "expand node " + n.id);
    row.appendChild(btn);
    var label = el("span", "label status-" + (n.status || "open"));
    var meta = "#" + n.id + (n.score !== null && n.score !== undefined ? " · score " + fmt(n.score) : "") +
      (n.visits ? " · visits " + n.visits + " · value " + fmt(n.value) : "") +
      (entry.children.length ? " · " + entry.children.length + " children" : "") +
      (n.terminal ? " · terminal" : "");
    label.appendChild(el("span", "meta", meta));
    label.appendChild(document.createTextNode(n.id === 0 && !n.step ? "(root: the question)" : excerpt(n.step, 90)));
    row.appendChild(label);
    li.appendChild(row);
    if (entry.children.length) {
      var ul = el("ul");
      ul.setAttribute("role", "group");
      entry.children.forEach(function (c) { ul.appendChild(buildNode(c)); });
      li.appendChild(ul);
      setOpen(li, !!onPath[n.id] || n.parent === null || n.parent === undefined);
    }
    btn.addEventListener("click", function () {
      var ul2 = li.querySelector(":scope > ul");
      setOpen(li, ul2.hidden);
    });
    label.addEventListener("click", function () {
      var rows = [["status", n.status], ["depth", n.depth], ["parent", n.parent], ["tokens", n.tokens],
                  ["finish", n.finish_reason], ["terminal", n.terminal], ["score (aggregate)", fmt(n.score)],
                  ["step scores", (n.scores || []).map(fmt).join(", ") || "–"], ["visits", n.visits],
                  ["value", fmt(n.value)], ["on the answer's path", onPath[n.id] ? "yes" : "no"]];
      Object.keys(n).forEach(function (k) {
        if (KNOWN.indexOf(k) < 0) rows.push([k, typeof n[k] === "object" ? JSON.stringify(n[k]) : fmt(n[k])]);
      });
      select(label, "Node #" + n.id, rows, n.step || "", ["Solution so far", pathText(n.id)]);
    });
    return li;
  }

  if (nodes.length) {
    document.getElementById("tree-section").hidden = false;
    var tree = document.getElementById("tree");
    roots.forEach(function (r) { tree.appendChild(buildNode(r)); });
    var all = function () { return tree.querySelectorAll("li.node"); };
    document.getElementById("expand-all").addEventListener("click", function () {
      all().forEach(function (li) { setOpen(li, true); });
    });
    document.getElementById("collapse-all").addEventListener("click", function () {
      all().forEach(function (li) { setOpen(li, false); });
    });
    document.getElementById("show-path").addEventListener("click", function () {
      all().forEach(function (li) { setOpen(li, !!onPath[li.dataset.id]); });
    });
  }

  // -- other events (samples, votes, scores, stops) ------------------------------------------------------
  var others = events.filter(function (e) { return e.kind !== "node"; });
  if (others.length) {
    document.getElementById("events-section").hidden = false;
    var tbody = document.querySelector("#events tbody");
    others.forEach(function (e, i) {
      var tr = el("tr", "clickable event-" + e.kind);
      tr.appendChild(el("td", null, i));
      tr.appendChild(el("td", null, e.kind));
      tr.appendChild(el("td", null, e.answer === undefined ? "" : fmt(e.answer)));
      tr.appendChild(el("td", null, e.tokens === undefined ? "" : fmt(e.tokens)));
      var rest = Object.keys(e).filter(function (k) { return ["kind", "answer", "tokens", "text"].indexOf(k) < 0; });
      tr.appendChild(el("td", null, excerpt(rest.map(function (k) {
        return k + "=" + (typeof e[k] === "object" ? JSON.stringify(e[k]) : fmt(e[k]));
      }).join("  "), 140)));
      tr.addEventListener("click", function () {
        var rows = Object.keys(e).filter(function (k) { return k !== "text"; }).map(function (k) {
          return [k, typeof e[k] === "object" ? JSON.stringify(e[k]) : fmt(e[k])];
        });
        select(tr, "Event " + i + ": " + e.kind, rows, typeof e.text === "string" ? e.text : undefined);
      });
      tbody.appendChild(tr);
    });
  }
})();
