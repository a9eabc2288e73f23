"""Render a trace file as one self-contained HTML page (no network, no external scripts or fonts).

The page embeds the trace as JSON in a ``<script type="application/json">`` element and builds the view
in the browser with ``assets/trace.js`` (inlined): every text from the trace is inserted with
``textContent``, never as markup, so a model's output cannot inject HTML. ``<``, ``>`` and ``&`` in the
JSON are written as ``\\u003c``-style escapes so no string in it can close the script element.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from typing import Any


def _asset(name: str) -> str:
    return resources.files("ttscale.viewer").joinpath("assets", name).read_text(encoding="utf-8")


def embed_json(value: Any) -> str:
    """JSON safe to place inside a ``<script>`` element."""
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_trace_html(doc: dict[str, Any], title: str | None = None) -> str:
    """The HTML page for a trace document (as :func:`~ttscale.viewer.trace_file.read_trace` returns it)."""
    name = title or f"ttscale trace: {doc.get('strategy') or 'solve'}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(name)}</title>
<style>
{_asset("trace.css")}
</style>
</head>
<body>
<header id="summary"></header>
<main>
  <section id="tree-section" hidden>
    <div class="toolbar">
      <h2>Search tree</h2>
      <button type="button" id="expand-all">Expand all</button>
      <button type="button" id="collapse-all">Collapse all</button>
      <button type="button" id="show-path">Chosen path only</button>
      <span class="legend"><span class="status-chosen">chosen</span> <span class="status-complete">complete</span>
      <span class="status-pruned">pruned</span> <span class="status-open">open</span>
      <span class="on-path-key">on the answer's path</span></span>
    </div>
    <ul id="tree" class="tree" role="tree"></ul>
  </section>
  <section id="events-section" hidden>
    <h2>Events</h2>
    <table id="events"><thead><tr><th>#</th><th>kind</th><th>answer</th><th>tokens</th><th>details</th></tr></thead>
    <tbody></tbody></table>
  </section>
  <aside id="details"><p class="hint">Click a node or an event to see its text and scores.</p></aside>
</main>
<script type="application/json" id="trace-data">{embed_json(doc)}</script>
<script>
{_asset("trace.js")}
</script>
</body>
</html>
"""
