"""The report in headless Chromium: it loads with no console errors, every plot renders, and a problem's
trace link opens its trace page."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))
from report_helpers import build_store  # noqa: E402

from ttscale.evals.report import build_report  # noqa: E402
from ttscale.evals.store import RunStore  # noqa: E402

pytestmark = pytest.mark.integration


def watch(page: Any, problems: list[str]) -> None:
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("requestfailed", lambda r: problems.append(f"failed {r.url}"))


def test_report_renders_every_plot_and_links_to_traces(browser: Any, tmp_path: Path) -> None:
    path, _ = build_store(tmp_path)
    out = tmp_path / "report.html"
    with RunStore.open(path, write=False) as store:
        build_report(store, None, out)
    page = browser.new_page()
    problems: list[str] = []
    watch(page, problems)
    page.goto(out.as_uri())
    images = page.locator("img")
    assert images.count() == 3
    widths = images.evaluate_all("imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
    assert all(w > 300 for w in widths), widths
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)

    page.locator("details summary").first.click()
    link = page.locator("details a").first
    assert link.is_visible()
    link.click()
    page.wait_for_load_state()
    assert page.url.endswith("00000.html")
    assert page.locator("#events tbody tr").count() >= 8  # the sampling run's 8 samples and its vote
    assert problems == []
    page.close()
