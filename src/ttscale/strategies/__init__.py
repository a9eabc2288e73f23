"""Test-time compute strategies, one module each, found by name through :data:`STRATEGIES`.

Entries are lazy (``"module:attr"``), so a strategy's module, and whatever it imports, loads only when the
strategy is looked up.
"""

from __future__ import annotations

from ..registry import Registry
from .base import ParamSpec, Strategy, build_strategy, configure, strategy_class, strategy_params

STRATEGIES: Registry[type] = Registry("strategy")
"""Strategy name to strategy class (a frozen dataclass implementing :class:`Strategy`)."""

STRATEGIES.register("direct", "ttscale.strategies.direct:Direct")
STRATEGIES.register("cot", "ttscale.strategies.cot:ChainOfThought")
STRATEGIES.register("self_consistency", "ttscale.strategies.self_consistency:SelfConsistency")
STRATEGIES.register("adaptive_consistency", "ttscale.strategies.adaptive_consistency:AdaptiveConsistency")
STRATEGIES.register("deepconf", "ttscale.strategies.deepconf:DeepConf")
STRATEGIES.register("best_of_n", "ttscale.strategies.best_of_n:BestOfN")
STRATEGIES.register("budget_forcing", "ttscale.strategies.budget_forcing:BudgetForcing")
STRATEGIES.register("tip", "ttscale.strategies.tip:ThoughtSwitchingPenalty")
STRATEGIES.register("beam_search", "ttscale.strategies.beam_search:BeamSearch")
STRATEGIES.register("dvts", "ttscale.strategies.dvts:DVTS")
STRATEGIES.register("mcts", "ttscale.strategies.mcts:MCTS")

__all__ = [
    "STRATEGIES",
    "ParamSpec",
    "Strategy",
    "build_strategy",
    "configure",
    "strategy_class",
    "strategy_params",
]
