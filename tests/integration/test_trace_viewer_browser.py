"""The trace viewer end to end: a real MCTS solve writes a trace, ``ttscale trace view`` renders it, and
headless Chromium loads the page, expands nodes on click and shows a node's text."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

QUESTION = "Tom has 3 boxes of 4 apples and eats 2 apples. How many apples are left?"


def ttscale(*args: str) -> list[str]:
    return [sys.executable, "-m", "ttscale.cli", *args]


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def page_file(small_path: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("trace")
    trace, page = folder / "mcts.json", folder / "mcts.html"
    solve = ttscale(
        "solve",
        QUESTION,
        "--model",
        str(small_path),
        "-s",
        "mcts",
        "-p",
        "iterations=3",
        "-p",
        "k=2",
        "-p",
        "max_step_tokens=24",
        "-p",
        "rollout_max_tokens=48",
        "--seed",
        "7",
        "--trace",
        str(trace),
    )
    subprocess.run(solve, check=True, capture_output=True, text=True, timeout=600)
    subprocess.run(
        ttscale("trace", "view", str(trace), "-o", str(page)), check=True, capture_output=True, timeout=120
    )
    return page, json.loads(trace.read_text())


def test_the_page_loads_clean_expands_on_click_and_shows_node_text(
    browser: Any, page_file: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    page_path, doc = page_file
    nodes = {e["id"]: e for e in doc["trace"] if e["kind"] == "node"}
    parents = {e["parent"] for e in nodes.values() if e["parent"] is not None}
    assert len(nodes) >= 5 and len(parents) >= 2  # root plus at least one expanded child

    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: problems.append(f"request {r.url}") if r.url != page_path.as_uri() else None)
    page.goto(page_path.as_uri())

    assert page.locator("li.node").count() == len(nodes)
    chosen = [n for n in doc["trace"] if n["kind"] == "choice"][-1]["path"]
    assert chosen and page.locator("li.on-path").count() == len(chosen) + 1  # the path plus the root

    page.click("#collapse-all")
    visible = page.locator("li.node:visible")
    assert visible.count() == 1  # only the root
    root_children = [i for i, n in nodes.items() if n["parent"] == 0]
    page.click("li.node[data-id='0'] > .row > .toggle")
    assert visible.count() == 1 + len(root_children)
    inner = next(i for i in root_children if i in parents)  # a child of the root with children of its own
    grandchildren = [i for i, n in nodes.items() if n["parent"] == inner]
    assert page.locator(f"li.node[data-id='{inner}'] > ul").is_hidden()
    page.click(f"li.node[data-id='{inner}'] > .row > .toggle")
    assert page.locator(f"li.node[data-id='{inner}'] > ul").is_visible()
    for child in grandchildren:
        assert page.locator(f"li.node[data-id='{child}']").is_visible()

    page.click(f"li.node[data-id='{inner}'] > .row > .label")
    details = page.locator("#details")
    assert details.locator("h3").inner_text() == f"Node #{inner}"
    assert details.locator("pre.node-text").inner_text().strip() == nodes[inner]["step"].strip()

    shot = tmp_path / "trace.png"
    page.screenshot(path=str(shot), full_page=True)
    width, height = png_size(shot)
    assert width >= 800 and height >= 300
    assert problems == []
    page.close()
