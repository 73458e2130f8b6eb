"""Build a small instance that validates against a JSON Schema.

The offline provider answers JSON tools with it, and the test OpenAI server uses
it to answer `response_format: json_schema` requests.
"""

from __future__ import annotations

from typing import Any


def sample_instance(schema: dict[str, Any], label: str = "sample") -> Any:
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator in schema:
            return sample_instance(schema[combinator][0], label)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties", {})
        return {key: sample_instance(sub, key) for key, sub in properties.items()}
    if kind == "array":
        count = max(schema.get("minItems", 1), 1)
        item = schema.get("items", {"type": "string"})
        return [sample_instance(item, label) for _ in range(count)]
    if kind == "string":
        text = f"{label.replace('_', ' ')} (sample)"
        min_length = schema.get("minLength", 0)
        if len(text) < min_length:
            text = text.ljust(min_length, ".")
        return text[: schema["maxLength"]] if "maxLength" in schema else text
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1))
    if kind == "boolean":
        return True
    return None
