"""Step-level search: steps, the search tree, expansion and scoring, and the final selection.

The strategies ``beam_search``, ``dvts`` and ``mcts`` (:mod:`ttscale.strategies`) are built from these
pieces; process scorers live in :mod:`ttscale.scorers.process`.

- :mod:`~ttscale.search.steps`: how solutions are cut into steps and how one step is asked for;
- :mod:`~ttscale.search.tree`: nodes (one step each), paths, prompts, ``node``/``choice`` trace events;
- :mod:`~ttscale.search.expand`: the :class:`~ttscale.search.expand.Searcher` (expand, look ahead, roll
  out, score), metered on the solve's ledger;
- :mod:`~ttscale.search.select`: weighted / naive / majority selection and the Result;
- :mod:`~ttscale.search.fields`: the hyperparameters the three strategies share.
"""

from __future__ import annotations

from .steps import STEP_SYSTEM_PROMPT, StepFormat, is_terminal
from .tree import Node, Tree

__all__ = ["STEP_SYSTEM_PROMPT", "Node", "StepFormat", "Tree", "is_terminal"]
