"""The engine's per-token logprob record: exact log-softmax and top-k, computed the fast way."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ttscale.backends.llamacpp.engine import _logprob_record, _top_indices


def _reference_top(x: np.ndarray, k: int) -> list[int]:
    return sorted(range(x.size), key=lambda i: (-x[i], i))[:k]


@settings(max_examples=200, deadline=None)
@given(
    x=arrays(np.float32, st.integers(1, 3000), elements=st.sampled_from([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0])),
    k=st.integers(1, 40),
)
def test_top_indices_match_a_full_sort_even_with_ties(x: np.ndarray, k: int) -> None:
    assert _top_indices(x, k).tolist() == _reference_top(x, k)


def test_top_indices_on_a_vocabulary_sized_array() -> None:
    x = np.random.default_rng(0).normal(0, 3, 151_936).astype(np.float32)
    assert _top_indices(x, 20).tolist() == _reference_top(x, 20)


def test_record_is_the_log_softmax_of_the_raw_logits() -> None:
    logits = np.random.default_rng(1).normal(0, 4, 5000).astype(np.float32)
    exact = logits.astype(np.float64) - np.log(np.exp(logits.astype(np.float64)).sum())
    rec = _logprob_record(logits, 5)
    logits[:] = 0.0  # a logits processor rewriting the live buffer must not change the record
    for tok in (0, 17, 4999):
        assert abs(rec.with_token(tok).logprob - exact[tok]) < 1e-5
    top = rec.with_token(3).top
    assert [i for i, _ in top] == _reference_top(exact, 5)
    assert all(abs(lp - exact[i]) < 1e-5 for i, lp in top)
    assert _logprob_record(np.zeros(10, np.float32), None).top == ()
