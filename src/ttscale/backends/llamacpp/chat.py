"""Rendering a :class:`~ttscale.types.Prompt` with the model's own chat template.

The template is the Jinja text stored in the GGUF (``tokenizer.chat_template``), rendered the way Hugging
Face ``transformers`` does (sandboxed Jinja, ``trim_blocks`` and ``lstrip_blocks``). The assistant turn is
opened with ``add_generation_prompt=True`` and ``Prompt.assistant_prefix`` is appended verbatim, so a
continuation reads exactly as if the model had written the prefix itself.
"""

from __future__ import annotations

from typing import Any

from ...types import Prompt

# ChatML, for GGUF files without a template (most instruct models of this size use it).
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class ChatTemplate:
    """A compiled chat template."""

    def __init__(self, source: str | None, bos_token: str = "", eos_token: str = "") -> None:
        import jinja2
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message: str) -> None:
            raise jinja2.TemplateError(message)

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = raise_exception
        self.source = source or CHATML
        self._template = env.from_string(self.source)
        self._extra: dict[str, Any] = {"bos_token": bos_token, "eos_token": eos_token}

    def render(self, prompt: Prompt) -> str:
        """The full prompt text: rendered conversation, opened assistant turn, assistant prefix."""
        messages = [{"role": m.role, "content": m.content} for m in prompt.messages]
        text = self._template.render(messages=messages, add_generation_prompt=True, **self._extra)
        return text + prompt.assistant_prefix
