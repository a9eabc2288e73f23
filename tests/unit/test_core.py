"""Core values, the error tree and the registry."""

from __future__ import annotations

import pytest

import ttscale
from ttscale import ConfigError, Prompt, SamplingParams, UnknownNameError
from ttscale.backends.base import Capabilities, require
from ttscale.backends.scripted import ScriptedGenerator
from ttscale.errors import CapabilityError
from ttscale.registry import Registry


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n": 0}, "n must be >= 1"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": -0.1}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"min_p": 1.0}, "min_p"),
        ({"logprobs": 101}, "logprobs"),
        ({"stop": "abc"}, "tuple of strings"),
        ({"stop": ("",)}, "non-empty"),
    ],
)
def test_sampling_params_are_validated(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SamplingParams(**kwargs)  # type: ignore[arg-type]


def test_prompt_continuation_extends_the_prefix_only() -> None:
    p = Prompt.user("q", system="s")
    q = p.continued("step 1\n").continued("step 2")
    assert q.messages == p.messages and q.assistant_prefix == "step 1\nstep 2"
    assert [m.role for m in p.messages] == ["system", "user"]
    with pytest.raises(ConfigError):
        ttscale.Message("robot", "x")  # type: ignore[arg-type]


def test_registry_is_lazy_and_suggests_names() -> None:
    reg: Registry[object] = Registry("widget")
    reg.register("json_dumps", "json:dumps")
    reg.register("self_consistency", object())
    import json

    assert reg.get("json_dumps") is json.dumps
    with pytest.raises(UnknownNameError) as err:
        reg.get("self_consistancy")
    assert "Did you mean 'self_consistency'" in str(err.value) and "json_dumps" in str(err.value)
    with pytest.raises(ConfigError, match="already registered"):
        reg.register("json_dumps", "json:loads")


def test_capability_requirements_fail_at_construction() -> None:
    gen = ScriptedGenerator(["x"], continue_prefix=False)
    with pytest.raises(CapabilityError, match="budget_forcing needs .*continuing an assistant prefix"):
        require(gen, who="budget_forcing", continue_prefix=True)
    with pytest.raises(CapabilityError, match="logprobs"):
        require(gen, who="deepconf", logprobs=20)
    require(ScriptedGenerator(["x"], logprob_fn=lambda t, i: -1.0), who="x", logprobs=20)
    assert Capabilities().native_n is False


def test_public_api_names_exist() -> None:
    for name in ttscale.__all__:
        assert hasattr(ttscale, name), name
