"""Self-consistency composed with the thought-switching penalty (``-p tip=true``)."""

from __future__ import annotations

import pytest

from ttscale import CapabilityError, ConfigError, Problem, solve
from ttscale.backends.scripted import ScriptedGenerator
from ttscale.strategies import build_strategy


def test_tip_needs_a_backend_with_logits_processors() -> None:
    gen = ScriptedGenerator(["\\boxed{1}"])
    with pytest.raises(CapabilityError, match="thought-switching penalty"):
        solve(Problem("1?"), "self_consistency", generator=gen, n=2, tip=True)
    assert gen.calls == []  # refused before anything was generated


def test_tip_parameters_are_validated_and_parsed() -> None:
    sc = build_strategy("self_consistency", {"tip": "true", "tip_alpha": "5", "tip_beta": "100"})
    assert (sc.tip, sc.tip_alpha, sc.tip_beta) == (True, 5.0, 100)  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="tip_alpha"):
        build_strategy("self_consistency", {"tip_alpha": "-1"})
