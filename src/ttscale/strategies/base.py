"""The strategy seam, and the generic machinery that builds a strategy from ``key=value`` strings.

A strategy *is* its configuration: a frozen dataclass whose fields are its hyperparameters, each declared
with ``field(default=..., metadata={"help": "..."})`` and checked in ``__post_init__``. Its ``solve`` takes a
problem and a :class:`~ttscale.compute.Meter` and returns a :class:`~ttscale.types.Result` without usage
(:func:`ttscale.solve` attaches what the meter counted).

:func:`build_strategy` looks a name up in the strategy registry and coerces string values (from the CLI or
a config file) to the field types, so every strategy gets parsing, validation and ``--help`` text for free.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, cast

from ..errors import ConfigError, UnknownNameError
from ..types import Completion, SamplingParams, TraceEvent

if TYPE_CHECKING:
    from ..compute import Meter
    from ..types import Problem, Result

_TRUE = frozenset({"true", "1", "yes", "y", "on"})
_FALSE = frozenset({"false", "0", "no", "n", "off"})
_NONE = frozenset({"none", "null", ""})


class Strategy(Protocol):
    """A test-time compute strategy: frozen hyperparameters plus ``solve``."""

    name: ClassVar[str]
    """The registered name, e.g. ``"self_consistency"``."""

    def solve(self, problem: Problem, generator: Meter) -> Result:
        """Solve ``problem`` using ``generator``; usage is left empty (the caller's meter counts it)."""
        ...


def logprob_summaries(strategy: Strategy) -> bool:
    """Whether an evaluation should ask the strategy's calls for the sampled tokens' logprobs, to store a
    :func:`logprob_summary` with each sample (costs ~2% of decoding); a strategy whose samples have no
    such summary says ``logprob_summaries = False`` (a class attribute) and is spared the cost."""
    return bool(getattr(type(strategy), "logprob_summaries", True))


@dataclass(frozen=True)
class ParamSpec:
    """One hyperparameter of a strategy, for help text and parsing."""

    name: str
    """Field name, used as the ``key`` of ``key=value``."""
    type: str
    """The field type as written, e.g. ``int`` or ``int | None``."""
    default: Any
    """The default value."""
    help: str
    """What the parameter means."""


def check(ok: bool, param: str, rule: str, value: object) -> None:
    """Raise :class:`ConfigError` ``"<param> must be <rule>, got <value>"`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{param} must be {rule}, got {value!r}")


def check_sampling(
    *, temperature: float, top_p: float = 1.0, top_k: int = 0, max_tokens: int = 1, n: int = 1
) -> None:
    """Validate the sampling hyperparameters most strategies share."""
    check(n >= 1, "n", "an integer >= 1", n)
    check(max_tokens >= 1, "max_tokens", "an integer >= 1", max_tokens)
    check(temperature >= 0 and math.isfinite(temperature), "temperature", "a finite number >= 0", temperature)
    check(0 < top_p <= 1, "top_p", "in (0, 1]", top_p)
    check(top_k >= 0, "top_k", "an integer >= 0 (0 disables it)", top_k)


class SamplingFields(Protocol):
    """The hyperparameters every sampling strategy declares."""

    @property
    def temperature(self) -> float | None: ...  # None: the strategy passes its own as an override
    @property
    def top_k(self) -> int: ...
    @property
    def top_p(self) -> float: ...
    @property
    def max_tokens(self) -> int: ...
    @property
    def seed(self) -> int | None: ...


def path_params(strategy: SamplingFields, k: int, first_index: int, **overrides: Any) -> SamplingParams:
    """Sampling parameters for ``k`` paths, the first being path ``first_index``.

    Path i samples with ``seed + i`` whatever batch it lands in, so a seed reproduces a vote however the
    budget split the draws. ``overrides`` replace any field (e.g. ``logprobs``, ``logits_processors``).
    """
    fields: dict[str, Any] = {
        "n": k,
        "max_tokens": strategy.max_tokens,
        "temperature": strategy.temperature if strategy.temperature is not None else 0.0,
        "top_k": strategy.top_k,
        "top_p": strategy.top_p,
        "seed": None if strategy.seed is None else strategy.seed + first_index,
    }
    return SamplingParams(**(fields | overrides))


def sample_event(
    index: int, text: str, completion: Completion, answer: str | None, method: str, voted: bool
) -> TraceEvent:
    """The trace record of one drawn sample."""
    data: dict[str, Any] = {
        "index": index,
        "text": text,
        "answer": answer,
        "method": method,
        "voted": voted,
        "finish_reason": completion.finish_reason,
        "tokens": len(completion.token_ids),
    }
    summary = logprob_summary((completion,))
    return TraceEvent("sample", data if summary is None else data | {"logprob": summary})


def logprob_summary(parts: Sequence[Completion]) -> dict[str, float | int] | None:
    """The sampled tokens' logprobs over a sample's completions: their mean, lowest and count.

    None when a part came without logprobs (none asked for, a backend without them, or a replayed draw
    recorded without them); ``{"tokens": 0}`` when nothing was sampled (an end of sequence at once). ``exp(mean)`` is the geometric-mean token probability, the confidence that predicted
    difficulty bins read (:func:`ttscale.evals.analysis.predicted_bins`); tokens a strategy inserted
    itself (budget forcing's "Wait") were not sampled and are not in it.
    """
    values: list[float] = []
    for c in parts:
        if c.logprobs is None:
            return None
        values.extend(r.logprob for r in c.logprobs)
    if not values:
        return {"tokens": 0}
    return {"mean": math.fsum(values) / len(values), "min": min(values), "tokens": len(values)}


# -- parameters ---------------------------------------------------------------------------------------


def _hints(cls: type) -> dict[str, Any]:
    if not dataclasses.is_dataclass(cls):
        raise ConfigError(f"{cls.__name__} is not a strategy: strategies are frozen dataclasses")
    return typing.get_type_hints(cls)


def type_name(tp: Any) -> str:
    """A readable name for a field type: ``int``, ``float | None``, ``'a' | 'b'``."""
    if isinstance(tp, type) and tp is not type(None):
        return tp.__name__
    if tp is type(None):
        return "None"
    args = typing.get_args(tp)
    if typing.get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in args)
    if args and _is_union(tp):
        return " | ".join(type_name(a) for a in args)
    return str(tp)


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def strategy_params(cls: type) -> list[ParamSpec]:
    """The hyperparameters of strategy class ``cls``, in declaration order."""
    hints = _hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        specs.append(ParamSpec(f.name, type_name(hints[f.name]), default, str(f.metadata.get("help", ""))))
    return specs


def _parse(tp: Any, value: object) -> object:
    """Convert ``value`` to ``tp``; raises ValueError when it does not fit."""
    if _is_union(tp):
        args = typing.get_args(tp)
        is_none = value is None or (isinstance(value, str) and value.strip().lower() in _NONE)
        if type(None) in args and is_none:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _parse(arg, value)
            except ValueError:
                continue
        raise ValueError(value)
    if typing.get_origin(tp) is Literal:
        for choice in typing.get_args(tp):
            if value == choice or (isinstance(value, str) and value.strip() == str(choice)):
                return choice
        raise ValueError(value)
    return _parse_scalar(tp, value)


def _parse_scalar(tp: Any, value: object) -> object:
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            return int(value.strip())
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            return float(value.strip())
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        raise ConfigError(f"unsupported parameter type {type_name(tp)}")
    raise ValueError(value)


def coerce_params(cls: type, params: Mapping[str, object], *, owner: str) -> dict[str, object]:
    """Check ``params`` against the fields of ``cls`` and convert string values to the field types."""
    hints = _hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    out: dict[str, object] = {}
    for key, value in params.items():
        if key not in known:
            raise UnknownNameError("parameter", key, known)
        expected = type_name(hints[key])
        try:
            out[key] = _parse(hints[key], value)
        except (ValueError, TypeError):
            raise ConfigError(f"parameter {key!r} of {owner} expects {expected}, got {value!r}") from None
    return out


def strategy_class(name: str) -> type:
    """The registered strategy class called ``name`` (:class:`UnknownNameError` lists the known ones)."""
    from . import STRATEGIES

    return STRATEGIES.get(name)


def build_strategy(name: str, params: Mapping[str, object] | None = None) -> Strategy:
    """Build the registered strategy ``name`` from ``key=value`` parameters (strings or typed values).

    Unknown keys raise :class:`UnknownNameError` listing the strategy's parameters; values that do not
    parse, or that the strategy refuses, raise :class:`ConfigError` naming the parameter.
    """
    cls = strategy_class(name)
    kwargs = coerce_params(cls, params or {}, owner=f"strategy {name!r}")
    return cast(Strategy, cls(**kwargs))


def configure(strategy: Strategy, params: Mapping[str, object]) -> Strategy:
    """A copy of ``strategy`` with ``params`` (coerced like :func:`build_strategy`) replaced."""
    if not params:
        return strategy
    cls = type(strategy)
    kwargs = coerce_params(cls, params, owner=f"strategy {cls.name!r}")
    return cast(Strategy, dataclasses.replace(cast(Any, strategy), **kwargs))
