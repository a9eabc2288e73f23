"""Why adaptive consistency and DeepConf online save little on this model: how many samples each drew,
and the adaptive rule replayed on the self-consistency@16 samples of every problem.

    python benchmarks/early_stopping.py --out benchmarks/results/gsm8k50.jsonl

Reads the rows ``gsm8k_strategies.py`` wrote (nothing is generated). For ``adaptive16`` and
``deepconf_online16`` it reports the samples drawn per problem and, on the problems both ran, accuracy and
completion tokens against ``sc16``. The replay feeds each problem's 16 ``sc16`` samples, in the order they
were drawn, to the Beta stopping rule (``beta_stop_probability``, threshold 0.95, as the strategy does,
batch 1 and 2) and reports where it would stop and the accuracy of the majority at that point: the
savings the rule can give on this model's answer distributions, on all 50 problems instead of the
subset the live runs finished. The answer key is used only to score.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

from gsm8k_strategies import done_rows

from ttscale.answers import group_answers, is_correct
from ttscale.strategies.adaptive_consistency import beta_stop_probability


def stop_point(answers: list[str | None], threshold: float, batch: int) -> int:
    """Samples the Beta rule draws before stopping (all of them if it never stops)."""
    for n in range(batch, len(answers) + 1, batch):
        groups = group_answers(answers[:n], "number")
        v1 = len(groups[0].members) if groups else 0
        v2 = len(groups[1].members) if len(groups) > 1 else 0
        if v1 and beta_stop_probability(v1, v2) >= threshold:
            return n
    return len(answers)


def majority(answers: list[str | None]) -> str | None:
    groups = group_answers(answers, "number")
    return groups[0].answer if groups else None


def live(rows: dict[str, dict[str, Any]], sc: dict[str, dict[str, Any]]) -> dict[str, Any]:
    same = [i for i in rows if i in sc]
    drawn = Counter(len(rows[i]["samples"]) for i in rows)
    return {
        "problems": len(rows),
        "samples_drawn": dict(sorted(drawn.items())),
        "stopped_before_16": sum(len(r["samples"]) < 16 for r in rows.values()),
        "accuracy": round(sum(bool(rows[i]["correct"]) for i in same) / len(same), 3),
        "sc16_accuracy_same_problems": round(sum(bool(sc[i]["correct"]) for i in same) / len(same), 3),
        "token_share_of_sc16": round(
            sum(rows[i]["completion_tokens"] for i in same) / sum(sc[i]["completion_tokens"] for i in same), 3
        ),
    }


def replay(sc: dict[str, dict[str, Any]], batch: int) -> dict[str, Any]:
    stops: list[int] = []
    correct = 0
    tokens = spent = 0
    for r in sc.values():
        answers = [s["answer"] for s in r["samples"]]
        n = stop_point(answers, 0.95, batch)
        stops.append(n)
        correct += is_correct(majority(answers[:n]), r["gold"], "number")
        tokens += sum(s["tokens"] for s in r["samples"][:n])
        spent += sum(s["tokens"] for s in r["samples"])
    return {
        "batch": batch,
        "problems": len(sc),
        "stops": dict(sorted(Counter(stops).items())),
        "accuracy": round(correct / len(sc), 3),
        "sc16_accuracy": round(sum(bool(r["correct"]) for r in sc.values()) / len(sc), 3),
        "token_share_of_sc16": round(tokens / spent, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/gsm8k50.jsonl"))
    args = ap.parse_args()
    rows = done_rows(args.out)
    by: dict[str, dict[str, dict[str, Any]]] = {}
    for (config, pid), r in rows.items():
        by.setdefault(config, {})[pid] = r
    sc = by["sc16"]
    summary = {
        "live": {c: live(by[c], sc) for c in ("adaptive16", "deepconf_online16") if c in by},
        "replay_adaptive_on_sc16": [replay(sc, 1), replay(sc, 2)],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
