"""Benchmark datasets shipped with the package, and ``jsonl:PATH`` for your own.

Each example pairs a :class:`~ttscale.types.Problem` (what a strategy sees: no answer) with its gold
answer (what only the evaluator reads). The files under ``ttscale/data`` are copies of public benchmark
files; their sources, commits and licenses are in ``ttscale/data/README.md``.

=============  =====================================  ===========  ===========================================
name           file                                   answer kind  checker
=============  =====================================  ===========  ===========================================
``gsm8k``      gsm8k_test.jsonl (1319, MIT)           number       exact rational equality of the final number
``math500``    math500_dev250.jsonl (250, MIT)        math         math-verify (LaTeX equivalence)
``aime24``     aime2024.jsonl (30, MIT)               number       integer equality
``game24``     game24.jsonl (1362, MIT)               game24       safe AST checker, each number used once
``hotpotqa``   hotpotqa_dev_distractor_sample100      text         SQuAD-style normalised exact match
``bamboogle``  bamboogle.jsonl (125, MIT)             text         SQuAD-style normalised exact match
=============  =====================================  ===========  ===========================================

Real examples, one per dataset:

- gsm8k ``gsm8k-test-0000``: "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning
  and bakes muffins for her friends every day with four. She sells the remainder at the farmers' market
  daily for $2 per fresh duck egg. How much in dollars does she make every day at the farmers' market?"
  -> ``18``.
- math500 ``test/precalculus/807.json``: "Convert the point $(0,3)$ in rectangular coordinates to polar
  coordinates. ..." -> ``\\left( 3, \\frac{\\pi}{2} \\right)``.
- aime24 ``aime-2024-I-01``: "Every morning Aya goes for a $9$-kilometer-long walk and stops at a coffee shop
  afterwards. ..." -> ``204``.
- game24 ``game24-0001``: "1 1 4 6" (shown as :data:`GAME24_INSTRUCTION` with these numbers) -> any
  expression using 1, 1, 4, 6 once each that equals 24.
- hotpotqa ``5a8e0dbd554299068b959e3e``: "What type of media does Hot Pixel and PlayStation Portable have
  in common?" -> ``video game`` (ten passages in ``metadata["context"]``).
- bamboogle ``bamboogle-001``: "Who was president of the United States in the year that Citibank was
  founded?" -> ``james madison``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigError, UnknownNameError
from ..types import Problem

AnswerKind = Literal["math", "number", "game24", "text"]


@dataclass(frozen=True)
class Example:
    """One benchmark item: the problem a strategy sees and the answer only the evaluator reads."""

    problem: Problem
    """The question (and non-answer metadata such as Game-of-24 numbers or HotpotQA passages)."""
    answer: str
    """Gold final answer (empty for Game of 24, which is checked by rule)."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Source fields kept for analysis that must not reach a strategy (reference solution, level...)."""


@dataclass(frozen=True)
class DatasetSpec:
    """A packaged dataset."""

    file: str
    """File name under ``ttscale/data``."""
    kind: AnswerKind
    """How answers are extracted and compared."""
    metadata_fields: tuple[str, ...] = ()
    """Source fields a strategy may see (never the answer or a solution)."""


DATASETS: dict[str, DatasetSpec] = {
    "gsm8k": DatasetSpec("gsm8k_test.jsonl", "number"),
    "math500": DatasetSpec("math500_dev250.jsonl", "math", ("subject", "level")),
    "aime24": DatasetSpec("aime2024.jsonl", "number"),
    "game24": DatasetSpec("game24.jsonl", "game24", ("numbers", "rank")),
    "hotpotqa": DatasetSpec("hotpotqa_dev_distractor_sample100.jsonl", "text", ("context", "type")),
    "bamboogle": DatasetSpec("bamboogle.jsonl", "text"),
}
"""Packaged datasets by name."""

_REQUIRED = ("id", "question", "answer")


def load(
    name: str, *, limit: int | None = None, offset: int = 0, kind: AnswerKind | None = None
) -> list[Example]:
    """Examples ``offset .. offset+limit`` of dataset ``name`` (a packaged name or ``jsonl:PATH``)."""
    if offset < 0 or (limit is not None and limit < 0):
        raise ConfigError(f"offset and limit must be >= 0, got offset={offset}, limit={limit}")
    if name.startswith("jsonl:"):
        path = Path(name[len("jsonl:") :])
        if not path.is_file():
            what = "is not a file" if path.exists() else "does not exist"
            raise ConfigError(f"dataset file {str(path)!r} {what}; pass jsonl:PATH of a JSON-lines file")
        spec = DatasetSpec(path.name, kind or "math")
        lines = _read_lines(path)
        source = str(path)
    else:
        if name not in DATASETS:
            raise UnknownNameError("dataset", name, [*DATASETS, "jsonl:PATH"])
        spec = DATASETS[name]
        lines = resources.files("ttscale.data").joinpath(spec.file).read_text(encoding="utf-8").splitlines()
        source = f"ttscale/data/{spec.file}"
    end = None if limit is None else offset + limit
    return list(_parse(lines, source, spec, offset, end))


def load_slice(name: str, *, limit: int | None, offset: int) -> list[Example]:
    """:func:`load`, refusing an empty slice with what would select problems."""
    examples = load(name, limit=limit, offset=offset)
    if examples:
        return examples
    if limit == 0:
        raise ConfigError("--limit 0 selects no problem; give --limit 1 or more (or leave it out for all)")
    size = len(load(name))
    raise ConfigError(
        f"--offset {offset} is past the end of {name}, which has {size} problems; give a smaller --offset"
    )


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise ConfigError(f"{path}, line {line}: not UTF-8 text; save the file as UTF-8") from None
    except OSError as e:
        raise ConfigError(f"cannot read dataset file {path}: {e.strerror or e}") from None


def _parse(
    lines: list[str], source: str, spec: DatasetSpec, start: int, end: int | None
) -> Iterator[Example]:
    seen = 0
    ids: dict[str, int] = {}  # problems are keyed by id (comparisons, difficulty bins): one line each
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if seen >= start and (end is None or seen < end):
            example = _example(line, source, lineno, spec)
            pid = example.problem.id or ""
            if pid in ids:
                raise ConfigError(
                    f"{source}, line {lineno}: id {pid!r} is already the id of line {ids[pid]}; "
                    "give every problem its own id"
                )
            ids[pid] = lineno
            yield example
        seen += 1
        if end is not None and seen >= end:
            return


def _example(line: str, source: str, lineno: int, spec: DatasetSpec) -> Example:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{source}, line {lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(row, dict):
        raise ConfigError(f"{source}, line {lineno}: expected a JSON object with id, question, answer")
    missing = [k for k in _REQUIRED if k not in row]
    if missing:
        raise ConfigError(f"{source}, line {lineno}: missing field(s) {', '.join(missing)}")
    empty = [k for k in _REQUIRED if row[k] is None]
    if empty:
        raise ConfigError(f"{source}, line {lineno}: field(s) {', '.join(empty)} are null; give them values")
    meta = {k: row[k] for k in spec.metadata_fields if k in row}
    extra = {k: v for k, v in row.items() if k not in _REQUIRED and k not in spec.metadata_fields}
    question = str(row["question"])
    if spec.kind == "game24":
        question = game24_question(question)
    problem = Problem(question, id=str(row["id"]), answer_kind=spec.kind, metadata=meta)
    return Example(problem, str(row["answer"]), extra)


GAME24_INSTRUCTION = (
    "Use the numbers {numbers} and the operations +, -, * and / to make 24. Use each number exactly once; "
    "parentheses are allowed. Give the final expression in \\boxed{{}}, for example \\boxed{{(1 + 2 + 3) * 4}}."
)
"""The task statement a Game-of-24 puzzle ("4 9 10 13" in the source file) is shown as."""


def game24_question(numbers: str) -> str:
    return GAME24_INSTRUCTION.format(numbers=" ".join(numbers.split()))


def dataset_kind(name: str) -> AnswerKind:
    """The answer kind of a packaged dataset."""
    if name not in DATASETS:
        raise UnknownNameError("dataset", name, DATASETS)
    return DATASETS[name].kind
