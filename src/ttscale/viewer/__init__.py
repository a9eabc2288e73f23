"""Offline views of what a strategy did: trace files and the self-contained HTML page that shows them.

``ttscale solve ... --trace FILE.json`` writes a trace file (:mod:`.trace_file`); ``ttscale trace view
FILE.json -o FILE.html`` renders it (:mod:`.trace_html`) as one HTML file with no outside requests: a
search tree with collapsible nodes, each node's text and scores on click, the chosen path highlighted, and
for sampling strategies the samples with their answers and votes.
"""

from .trace_file import TRACE_FORMAT, read_trace, trace_document, write_trace
from .trace_html import render_trace_html

__all__ = ["TRACE_FORMAT", "read_trace", "render_trace_html", "trace_document", "write_trace"]
