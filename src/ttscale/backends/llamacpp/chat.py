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
        text = self._render([m.role for m in prompt.messages], [m.content for m in prompt.messages])
        return text + prompt.assistant_prefix

    def render_parts(self, prompt: Prompt) -> list[tuple[str, bool]]:
        """:meth:`render` as pieces, each marked True when it is the template's own markup and False when it
        is text from the conversation (a message's content or the assistant prefix), so that markup can be
        tokenised as chat control tokens and conversation text never is. The contents go in as given: a
        template that edits them (``| trim``) joins to slightly other text than :meth:`render`."""
        marks = [f"\x00ttscale-part-{i}\x00" for i in range(len(prompt.messages))]
        # (a template that does not copy each content once, verbatim and in order gets one markup piece:
        # the caller cannot keep the conversation's text apart then, see LlamaCppGenerator._tokenize)
        text = self._render([m.role for m in prompt.messages], marks)
        parts: list[tuple[str, bool]] = []
        for mark, message in zip(marks, prompt.messages, strict=True):
            head, found, text = text.partition(mark)
            if not found:  # a template that does not copy a message's content verbatim: no split
                return [(self._render([m.role for m in prompt.messages], [m.content for m in prompt.messages]), True),
                        (prompt.assistant_prefix, False)]  # fmt: skip
            parts += [(head, True), (message.content, False)]
        parts += [(text, True), (prompt.assistant_prefix, False)]
        if any("\x00ttscale-part-" in t for t, markup in parts if markup):  # a content written twice
            return [(self.render(prompt)[: -len(prompt.assistant_prefix) or None], True),
                    (prompt.assistant_prefix, False)]  # fmt: skip
        return [(t, markup) for t, markup in parts if t]

    def _render(self, roles: list[str], contents: list[str]) -> str:
        import jinja2

        messages = [{"role": r, "content": c} for r, c in zip(roles, contents, strict=True)]
        try:
            return self._template.render(messages=messages, add_generation_prompt=True, **self._extra)
        except jinja2.TemplateError:
            if not messages or messages[0]["role"] != "system":
                raise
        # a template without a system role (Gemma's raises "System role not supported"): the system text
        # goes at the top of the first user message, as those models' own chat code does
        system, rest = messages[0], messages[1:]
        if rest and rest[0]["role"] == "user":
            rest[0] = {"role": "user", "content": system["content"] + "\n\n" + rest[0]["content"]}
        else:
            rest.insert(0, {"role": "user", "content": system["content"]})
        return self._template.render(messages=rest, add_generation_prompt=True, **self._extra)
