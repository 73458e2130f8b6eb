"""A job's output as a document: a title and blocks (headings, paragraphs, lists)
that every format (Markdown, PDF, DOCX) renders the same way.

A roadmap becomes its phases (title, duration, goals, milestones, actions); a
text output is read as Markdown (headings become sections); any other JSON
output becomes a section per field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

BlockKind = Literal["heading", "paragraph", "bullets", "numbered"]

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^\s*[-*+•]\s+(.*)$")
_NUMBERED = re.compile(r"^\s*\d+[.)]\s+(.*)$")
_RULE = re.compile(r"^\s*([-*_])(\s*\1){2,}\s*$")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_EMPHASIS = re.compile(r"(?<!\w)(\*\*|__|\*|_|`)(?=\S)(.+?)(?<=\S)\1(?!\w)")


@dataclass
class Block:
    kind: BlockKind
    text: str = ""
    level: int = 1  # headings: 1 (a section) to 3
    items: list[str] = field(default_factory=list)


@dataclass
class Document:
    title: str
    subtitle: str = ""
    blocks: list[Block] = field(default_factory=list)

    def heading(self, text: str, level: int = 1) -> None:
        self.blocks.append(Block("heading", text=text, level=level))

    def paragraph(self, text: str) -> None:
        if text.strip():
            self.blocks.append(Block("paragraph", text=text.strip()))

    def bullets(self, items: list[Any], kind: BlockKind = "bullets") -> None:
        texts = [_scalar(item) for item in items if _scalar(item)]
        if texts:
            self.blocks.append(Block(kind, items=texts))

    def headings(self) -> list[str]:
        return [block.text for block in self.blocks if block.kind == "heading"]


def from_output(*, tool: str, tool_title: str, output: Any, job_input: Mapping[str, Any]) -> Document:
    if tool == "roadmap" and isinstance(output, Mapping) and isinstance(output.get("phases"), list):
        return _roadmap(output, tool_title)
    if isinstance(output, Mapping) and set(output) == {"text"}:
        return from_markdown(str(output["text"]), default_title=_text_title(tool, tool_title, job_input))
    return _generic(output, tool_title)


def _roadmap(output: Mapping[str, Any], tool_title: str) -> Document:
    document = Document(title=_scalar(output.get("title")) or tool_title, subtitle=tool_title)
    document.paragraph(_scalar(output.get("summary")))
    for number, phase in enumerate(output["phases"], start=1):
        if not isinstance(phase, Mapping):
            continue
        document.heading(f"Phase {number}: {_scalar(phase.get('title'))}".rstrip(": "))
        if phase.get("duration"):
            document.paragraph(f"Duration: {_scalar(phase['duration'])}")
        for name, label in (("goals", "Goals"), ("milestones", "Milestones"), ("actions", "Actions")):
            items = phase.get(name)
            if isinstance(items, list) and items:
                document.heading(label, level=2)
                document.bullets(items)
    for name, label in (("risks", "Risks"), ("resources", "Resources")):
        items = output.get(name)
        if isinstance(items, list) and items:
            document.heading(label)
            document.bullets(items)
    return document


def from_markdown(text: str, *, default_title: str) -> Document:
    """Read Markdown into blocks: `#` headings become sections, lists stay lists.
    A first top-level heading becomes the title."""
    document = Document(title=default_title)
    paragraph: list[str] = []
    in_code = False

    def flush() -> None:
        if paragraph:
            document.paragraph(" ".join(paragraph) if not in_code else "\n".join(paragraph))
            paragraph.clear()

    for line in text.splitlines():
        if line.strip().startswith("```"):
            flush()
            in_code = not in_code
            continue
        if in_code:
            paragraph.append(line)
            continue
        heading = _HEADING.match(line)
        bullet = _BULLET.match(line)
        numbered = _NUMBERED.match(line)
        if not line.strip() or _RULE.match(line):
            flush()
        elif heading:
            flush()
            level, title = len(heading.group(1)), plain(heading.group(2))
            if level == 1 and not document.blocks and document.title == default_title:
                document.title, document.subtitle = title, default_title
            else:
                document.heading(title, level=min(max(level - 1, 1), 3))
        elif bullet or numbered:
            flush()
            kind: BlockKind = "bullets" if bullet else "numbered"
            item = plain((bullet or numbered).group(1))
            last = document.blocks[-1] if document.blocks else None
            if last is not None and last.kind == kind:
                last.items.append(item)
            else:
                document.blocks.append(Block(kind, items=[item]))
        else:
            paragraph.append(plain(line.strip()))
    flush()
    return document


def _generic(output: Any, tool_title: str) -> Document:
    if not isinstance(output, Mapping):
        document = Document(title=tool_title)
        _add_value(document, output)
        return document
    document = Document(title=_scalar(output.get("title")) or tool_title, subtitle=tool_title)
    for name, value in output.items():
        if name == "title" or value in (None, "", [], {}):
            continue
        document.heading(_label(name))
        _add_value(document, value)
    return document


def _add_value(document: Document, value: Any) -> None:
    if isinstance(value, Mapping):
        document.bullets([f"{_label(key)}: {_scalar(item)}" for key, item in value.items()])
    elif isinstance(value, list):
        document.bullets(value)
    else:
        for part in str(value).split("\n\n"):
            document.paragraph(part)


def _text_title(tool: str, tool_title: str, job_input: Mapping[str, Any]) -> str:
    if tool == "document" and job_input.get("document_type"):
        return _label(str(job_input["document_type"]))
    return tool_title


def _label(name: str) -> str:
    words = name.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def _scalar(value: Any) -> str:
    """One line of text for a list item or field, whatever its JSON type."""
    if value is None:
        return ""
    if isinstance(value, Mapping):
        return "; ".join(f"{_label(str(key))}: {_scalar(item)}" for key, item in value.items() if item)
    if isinstance(value, list):
        return ", ".join(_scalar(item) for item in value)
    return str(value).strip()


def plain(text: str) -> str:
    """Markdown inline markup removed: **bold**, _italic_, `code`, [text](url) → text (url)."""
    text = _LINK.sub(lambda match: f"{match.group(1)} ({match.group(2)})", text)
    return _EMPHASIS.sub(lambda match: match.group(2), text)
