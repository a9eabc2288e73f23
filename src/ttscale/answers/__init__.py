"""Final answers: find them in a response, compare them, check them, and vote over them.

- :func:`extract_answer` finds the final answer in a response (``\\boxed{}``, "Final Answer:", ``####``,
  then a kind-specific fallback).
- :func:`equivalent` says whether two answers are the same answer; :func:`is_correct` grades one answer
  against the key (the evaluator's side: strategies never see the key).
- :func:`group_answers` groups sampled answers by equivalence and weighs the groups (self-consistency).
- :func:`check_24` is a safe Game-of-24 checker; :func:`normalize_number` reads a number exactly.

Answer kinds are ``Problem.answer_kind``: ``math`` (LaTeX, compared with math-verify when installed),
``number`` (GSM8K-style), ``game24`` and ``text`` (SQuAD exact match).
"""

from __future__ import annotations

from .equivalence import equivalent, is_correct
from .extract import Extraction, extract_answer
from .game24 import Game24Check, check_24
from .normalize import normalize_number
from .vote import AnswerGroup, group_answers

__all__ = [
    "AnswerGroup",
    "Extraction",
    "Game24Check",
    "check_24",
    "equivalent",
    "extract_answer",
    "group_answers",
    "is_correct",
    "normalize_number",
]
