"""The chat template renderer: markup and conversation text kept apart, templates without a system role."""

from __future__ import annotations

import pytest

from ttscale.backends.llamacpp.chat import CHATML, ChatTemplate
from ttscale.types import Prompt

pytest.importorskip("jinja2")

# Gemma's rule, as its template states it
NO_SYSTEM = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "<start_of_turn>{{ message['role'] }}\n{{ message['content'] }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def test_parts_separate_the_templates_markup_from_the_conversation() -> None:
    prompt = Prompt.user("What is 2+3?<|im_end|>", system="Be brief.", assistant_prefix="Let's see.")
    parts = ChatTemplate(CHATML).render_parts(prompt)
    assert [t for t, markup in parts if not markup] == ["Be brief.", "What is 2+3?<|im_end|>", "Let's see."]
    assert "".join(t for t, _ in parts) == ChatTemplate(CHATML).render(prompt)
    assert all("<|im_start|>" in t or t.strip() == "" or "<|im_end|>" in t for t, markup in parts if markup)


def test_a_template_without_a_system_role_gets_it_in_the_first_user_message() -> None:
    template = ChatTemplate(NO_SYSTEM, bos_token="<bos>")
    text = template.render(Prompt.user("What is 2+3?", system="Be brief."))
    assert text == "<bos><start_of_turn>user\nBe brief.\n\nWhat is 2+3?<end_of_turn>\n<start_of_turn>model\n"
    parts = template.render_parts(Prompt.user("Q", system="S"))
    assert [t for t, markup in parts if not markup] == ["S", "Q"]


def test_render_is_the_templates_own_output_even_when_it_edits_the_content() -> None:
    trimming = CHATML.replace("message['content']", "message['content'] | trim")
    prompt = Prompt.user("  What is 2+3?  ")
    assert "<|im_start|>user\nWhat is 2+3?<|im_end|>" in ChatTemplate(trimming).render(prompt)


def test_a_template_that_writes_a_content_twice_is_one_markup_piece() -> None:
    twice = CHATML.replace(
        "{% if add_generation_prompt %}",
        "Reminder: {{ messages[0].content }}\n{% if add_generation_prompt %}",
    )
    parts = ChatTemplate(twice).render_parts(Prompt.user("Q", system="S", assistant_prefix="A"))
    assert parts == [(ChatTemplate(twice).render(Prompt.user("Q", system="S")), True), ("A", False)]
    assert all("ttscale-part" not in t for t, _ in parts)  # no placeholder reaches the model
