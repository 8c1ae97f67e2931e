"""Renders chat turns into one prompt with the model's own chat template when it has one."""

from __future__ import annotations

from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from services.inference.models import ChatTurn

_ROLES = ("system", "user", "assistant")


def render_chat(turns: tuple[ChatTurn, ...], template: str, bos: str, eos: str) -> str:
    """Base GGUFs (like the packaged Gemma 3 270M) ship no template: fall back to a plain
    transcript that ends with the assistant's cue, so any model can continue it."""
    if template:
        formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        messages = [{"role": t.role, "content": t.content} for t in turns]
        return formatter(messages=messages).prompt  # type: ignore[arg-type]
    lines = [f"{t.role.capitalize()}: {t.content}" for t in turns]
    return "\n\n".join([*lines, "Assistant:"])


def unknown_roles(turns: tuple[ChatTurn, ...]) -> list[str]:
    return sorted({t.role for t in turns if t.role not in _ROLES})
