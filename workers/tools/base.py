"""What a tool is: a declarative definition the API validates against and the
pipeline turns into provider messages."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from jsonschema import Draft202012Validator, ValidationError

OutputKind = Literal["text", "json"]
ALL_PLANS = ("free", "pro", "business")

# Profile fields a tool may use to personalise its prompt, with the label the
# model sees. The API validates the profile against the same list.
PROFILE_FIELDS: dict[str, str] = {
    "name": "Name",
    "locale": "Preferred language",
    "career_stage": "Career stage",
    "archetype": "Archetype",
    "industry": "Industry",
    "goals": "Goals",
    "skills": "Skills",
    "interests": "Interests",
    "experience_level": "Experience level",
    "learning_style": "Learning style",
    "wellbeing_focus": "Wellbeing focus",
}

# The earlier turns a conversation tool (coach, tutor) takes, oldest first.
HISTORY_SCHEMA: dict[str, Any] = {
    "type": "array",
    "maxItems": 50,
    "description": "Earlier turns of the conversation, oldest first.",
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["role", "content"],
        "properties": {
            "role": {"type": "string", "enum": ["user", "assistant"], "description": "Who wrote the turn."},
            "content": {
                "type": "string",
                "minLength": 1,
                "maxLength": 16000,
                "description": "The text of the turn.",
            },
        },
    },
}


class _Blank(dict):
    """format_map mapping that renders optional input fields as empty text."""

    def __missing__(self, key: str) -> str:
        return ""


@dataclass(frozen=True)
class Tool:
    name: str
    title: str
    description: str
    input_schema: dict[str, Any]  # JSON Schema (draft 2020-12) of the job's `input`
    system_prompt: str  # the model's instructions; personalised with the profile
    user_template: str  # str.format_map over the input; missing optional fields render empty
    output: OutputKind = "text"
    output_schema: dict[str, Any] | None = None  # required when output == "json"
    default_model: str | None = None  # None: the configured DEFAULT_MODEL
    max_output_tokens: int = 1024
    temperature: float = 0.7
    queue: str = "ai"
    plans: tuple[str, ...] = ALL_PLANS
    conversation: bool = False  # input carries `history` turns before `message`
    # Someone waits on the answer as it streams: a plan's background lane (flex) is only
    # the default for tools that are not interactive.
    interactive: bool = True
    fallbacks: tuple[str, ...] = ()  # models a job goes on to, in order, when its own fails
    # Bump when a change to the tool (its prompts, schema or how its messages are built)
    # should stop its cached answers from being served (workers/response_cache.py).
    version: int = 1
    # Seconds an answer may be served again from the response cache; None: never cached.
    cache_ttl: int | None = None
    # Its messages carry the owner's profile: cached answers are the owner's alone. A tool
    # that is not personalised sends no profile, so its answers may be shared across users.
    personalised: bool = True

    def __post_init__(self) -> None:
        Draft202012Validator.check_schema(self.input_schema)
        if self.cache_ttl is not None and (self.conversation or self.cache_ttl <= 0):
            # A conversation's turn answers what came before; serving an old one is wrong.
            raise ValueError(f"tool {self.name}: only a non-conversation tool may cache, for a positive ttl")
        if self.output == "json":
            if self.output_schema is None:
                raise ValueError(f"tool {self.name}: a json tool needs an output_schema")
            Draft202012Validator.check_schema(self.output_schema)

    def input_errors(self, data: Any) -> dict[str, list[str]]:
        """Field errors of `data` against the input schema, keyed by dotted path."""
        return schema_errors(self.input_schema, data)

    def output_errors(self, data: Any) -> dict[str, list[str]]:
        return schema_errors(self.output_schema or {}, data)

    def build_messages(self, data: Mapping[str, Any], profile: Mapping[str, Any]) -> list[dict[str, str]]:
        """The chat messages for one run: system (with profile), earlier turns, user."""
        system = self.system_prompt.strip()
        if data.get("system"):  # the caller's own instructions (the `text` tool takes them)
            system += "\n\nInstructions from the application:\n" + str(data["system"]).strip()
        about = describe_profile(profile) if self.personalised else ""
        if about:
            system += "\n\nAbout the person you are helping:\n" + about
        if self.output == "json":
            system += (
                "\n\nReply with one JSON object only, no prose and no code fences, "
                "that validates against this JSON Schema:\n" + _compact_json(self.output_schema)
            )
        messages = [{"role": "system", "content": system}]
        if self.conversation:
            for turn in data.get("history", []):
                messages.append({"role": turn["role"], "content": turn["content"]})
        values = _Blank({key: _as_text(value) for key, value in data.items()})
        messages.append({"role": "user", "content": self.user_template.format_map(values).strip()})
        return messages

    def describe(self) -> dict[str, Any]:
        """The public view of the tool, as GET /tools shows it."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "output": self.output,
            "input_schema": self.input_schema,
            "output_schema": self.output_schema,
            "plans": list(self.plans),
            "conversation": self.conversation,
            "interactive": self.interactive,
            "max_output_tokens": self.max_output_tokens,
            "cache_ttl": self.cache_ttl,
            "personalised": self.personalised,
        }


def describe_profile(profile: Mapping[str, Any]) -> str:
    lines = []
    for key, label in PROFILE_FIELDS.items():
        value = profile.get(key)
        if value not in (None, "", [], {}):
            lines.append(f"- {label}: {_as_text(value)}")
    return "\n".join(lines)


def schema_errors(schema: Mapping[str, Any], data: Any) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    for error in validator.iter_errors(data):
        for path, message in _field_messages(error):
            errors.setdefault(".".join(path) or "_schema", []).append(message)
    return errors


def _field_messages(error: ValidationError) -> list[tuple[list[str], str]]:
    """Key a missing or unexpected property by its own path, as marshmallow does.

    jsonschema reports both at the parent object, which for a top-level field
    would leave the client an error under `_schema` instead of under the field.
    """
    parent = [str(part) for part in error.absolute_path]
    instance = error.instance
    if error.validator == "required" and isinstance(instance, Mapping):
        for name in error.validator_value:
            if name not in instance and error.message.startswith(repr(name)):
                return [([*parent, name], "Missing data for required field.")]
    if error.validator == "additionalProperties" and error.validator_value is False:
        known = error.schema.get("properties", {})
        patterns = error.schema.get("patternProperties", {})
        unknown = [
            str(name)
            for name in instance
            if name not in known and not any(re.search(pattern, name) for pattern in patterns)
        ]
        if unknown:
            return [([*parent, name], "Unknown field.") for name in unknown]
    return [(parent, error.message)]


def _as_text(value: Any) -> str:
    # Objects render as "key: value; ..." and a list of them one per line, so a
    # prompt never shows the model a Python repr.
    if isinstance(value, Mapping):
        return "; ".join(f"{key}: {_as_text(item)}" for key, item in value.items())
    if isinstance(value, list | tuple):
        if any(isinstance(item, Mapping) for item in value):
            return "\n".join(f"- {_as_text(item)}" for item in value)
        return ", ".join(_as_text(item) for item in value)
    return str(value)


def _compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
