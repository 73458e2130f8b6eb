"""The built-in tool catalogue."""

from __future__ import annotations

from workers.tools.base import Tool
from workers.tools.career import BRAND, COACH, CONTENT, DOCUMENT, ROADMAP
from workers.tools.general import PROMPT_ENHANCE, TEXT
from workers.tools.learning import TUTOR
from workers.tools.wellness import MEDITATION_SESSION, MOOD_INSIGHTS, SLEEP_STORY

# Ordered as GET /tools lists them.
TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        TEXT,
        ROADMAP,
        BRAND,
        CONTENT,
        DOCUMENT,
        COACH,
        TUTOR,
        PROMPT_ENHANCE,
        MEDITATION_SESSION,
        SLEEP_STORY,
        MOOD_INSIGHTS,
    )
}


def get_tool(name: str) -> Tool | None:
    return TOOLS.get(name)


def all_tools() -> list[Tool]:
    return list(TOOLS.values())
