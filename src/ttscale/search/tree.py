"""The search tree shared by beam search, DVTS and MCTS: nodes are reasoning steps.

Node 0 is the root (the empty solution). Every other node holds one step generated from its parent's
prefix; its path from the root is a partial (or, when ``terminal``, a finished) solution, and
``tree.prompt(node)`` is the step prompt continued by that path, which is what its children are sampled
from. Nodes are mutable bookkeeping inside one solve; what leaves the solve is their trace events.

Trace. :meth:`Tree.events` gives one ``node`` event per node, in creation order, with the node's final
state: ``id``, ``parent``, ``depth``, ``step``, ``finish_reason``, ``tokens``, ``terminal``, ``scores``
(the process scores of the steps on its path), ``score`` (their aggregate, used for ranking), ``visits``
and ``value`` (MCTS), ``status`` and strategy extras (``subtree``, ``lookahead``, ``rollout``, ...).
Statuses: ``chosen`` (kept and expanded further), ``pruned`` (dropped by a ranking), ``complete`` (a
finished solution that took part in the final selection) and ``open`` (generated, but the search ended,
by its bound or by the budget, before a decision about it). :func:`choice_event` names the path that gave
the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..types import FinishReason, Prompt, TraceEvent

NodeStatus = Literal["open", "chosen", "pruned", "complete"]


@dataclass
class Node:
    """One step of the search tree (mutable: scores, visits and status are filled in as the search runs)."""

    id: int
    parent: int | None
    depth: int
    step: str
    """The step as generated (stripped), without the separator."""
    text: str
    """What this step adds to the prefix: the step and its separator (the step alone when terminal)."""
    finish: FinishReason | None = None
    tokens: int = 0
    terminal: bool = False
    scores: tuple[float, ...] = ()
    score: float | None = None
    visits: int = 0
    value_sum: float = 0.0
    status: NodeStatus = "open"
    children: list[int] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> float:
        """Mean backed-up value (MCTS's Q); 0 before the first visit."""
        return self.value_sum / self.visits if self.visits else 0.0


class Tree:
    """Nodes of one solve, and the prompts and texts their paths make."""

    def __init__(self, prompt: Prompt) -> None:
        self.base = prompt
        self.nodes: list[Node] = [Node(0, None, 0, "", "", status="chosen")]

    @property
    def root(self) -> Node:
        return self.nodes[0]

    def add(
        self, parent: int, step: str, text: str, finish: FinishReason, tokens: int, terminal: bool
    ) -> Node:
        """A new child of ``parent``."""
        up = self.nodes[parent]
        node = Node(len(self.nodes), parent, up.depth + 1, step, text, finish, tokens, terminal)
        self.nodes.append(node)
        up.children.append(node.id)
        return node

    def path(self, node: int) -> list[Node]:
        """The nodes from the root's first child down to ``node`` (empty for the root)."""
        out: list[Node] = []
        cur: int | None = node
        while cur is not None and cur != 0:
            out.append(self.nodes[cur])
            cur = self.nodes[cur].parent
        return out[::-1]

    def steps(self, node: int) -> list[str]:
        """The steps of ``node``'s partial solution."""
        return [n.step for n in self.path(node)]

    def prefix(self, node: int) -> str:
        """The assistant text of ``node``'s partial solution, as its children continue it."""
        return "".join(n.text for n in self.path(node))

    def prompt(self, node: int) -> Prompt:
        """The prompt ``node``'s children are sampled from."""
        return self.base.continued(self.prefix(node))

    def response(self, node: int, tail: str = "") -> str:
        """The full response text of ``node``'s solution (plus a rollout ``tail``)."""
        return (self.base.assistant_prefix + self.prefix(node) + tail).strip()

    def events(self) -> list[TraceEvent]:
        """One ``node`` event per node, root first."""
        return [node_event(n) for n in self.nodes]


def by_score(node: Node) -> tuple[float, int]:
    """Sort key: best aggregated score first (unscored last), the earlier node on ties."""
    return (-(node.score if node.score is not None else float("-inf")), node.id)


def node_event(n: Node) -> TraceEvent:
    """The trace record of one node's final state."""
    return TraceEvent(
        "node",
        {
            "id": n.id,
            "parent": n.parent,
            "depth": n.depth,
            "step": n.step,
            "finish_reason": n.finish,
            "tokens": n.tokens,
            "terminal": n.terminal,
            "scores": list(n.scores),
            "score": n.score,
            "visits": n.visits,
            "value": n.value if n.visits else None,
            "status": n.status,
            **n.extra,
        },
    )


def choice_event(tree: Tree, node: int | None, **extra: Any) -> TraceEvent:
    """The trace record of the path the answer came from (root excluded); empty when there is none."""
    path = [] if node is None else [n.id for n in tree.path(node)]
    return TraceEvent("choice", {"path": path, "node": node, **extra})
