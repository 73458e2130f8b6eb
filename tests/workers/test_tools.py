"""The built-in tool catalogue: schemas, examples, and the messages each tool builds."""

from __future__ import annotations

import re
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from workers.providers.schema_sample import sample_instance
from workers.tools import TOOLS, all_tools, get_tool
from workers.tools.base import ALL_PLANS, Tool

NAMES = [
    "text",
    "roadmap",
    "brand",
    "content",
    "document",
    "coach",
    "tutor",
    "prompt_enhance",
    "meditation_session",
    "sleep_story",
    "mood_insights",
]
JSON_TOOLS = ["roadmap", "brand", "meditation_session", "mood_insights"]
CONVERSATION_TOOLS = ["coach", "tutor"]
PLACEHOLDER = re.compile(r"\{[A-Za-z_]\w*\}")

# A full valid input per tool, optional fields included, with text that must
# reach the user message.
EXAMPLES: dict[str, dict[str, Any]] = {
    "text": {"prompt": "Write a haiku about queues.", "system": "Answer in French."},
    "roadmap": {
        "goal": "Move from teaching into instructional design",
        "timeline": "90_days",
        "current_situation": "Ten years teaching chemistry",
        "hours_per_week": 8,
        "constraints": "Two children, small budget",
    },
    "brand": {
        "description": "Nutritionist for busy nurses on night shifts",
        "brand_name": "Night Fuel",
        "audience": "Hospital nurses",
        "personality": "caring, practical",
        "differentiators": "Former ICU nurse myself",
    },
    "content": {
        "topic": "Why I left law to become a florist",
        "platform": "instagram",
        "tone": "friendly",
        "audience": "Career changers",
        "call_to_action": "Visit the shop link in bio",
        "variations": 2,
    },
    "document": {
        "document_type": "resume",
        "details": "Operations manager at Acme 2015-2024; cut costs 18%",
        "target": "Head of Operations at a logistics startup",
        "length": "standard",
    },
    "coach": {
        "message": "Should I ask for a raise before or after my review?",
        "history": [
            {"role": "user", "content": "I want to talk about pay."},
            {"role": "assistant", "content": "Of course. What is on your mind?"},
        ],
    },
    "tutor": {
        "message": "I don't get why the derivative of x squared is 2x.",
        "history": [{"role": "user", "content": "Can we do calculus today?"}],
        "subject": "Calculus I",
        "level": "beginner",
    },
    "prompt_enhance": {
        "prompt": "make me a logo",
        "goal": "A logo for a bakery",
        "task_type": "image",
        "audience": "Local families",
    },
    "meditation_session": {
        "focus": "anxiety",
        "duration_minutes": 5,
        "technique": "body_scan",
        "experience": "new",
        "current_feeling": "restless before an exam",
    },
    "sleep_story": {
        "theme": "a lantern-lit harbour at dusk",
        "length": "short",
        "listener": "child",
        "include": "a sleepy otter",
        "avoid": "storms",
    },
    "mood_insights": {
        "entries": [
            {"date": "2024-06-01", "mood": 3, "note": "argument with my sister"},
            {"date": "2024-06-02", "mood": 5},
            {"date": "2024-06-03", "mood": 8, "note": "swimming"},
        ],
        "question": "Does exercise help me?",
    },
}

# A required field per tool, left out to check the error is keyed by it.
REQUIRED_FIELD = {
    "text": "prompt",
    "roadmap": "timeline",
    "brand": "description",
    "content": "platform",
    "document": "details",
    "coach": "message",
    "tutor": "message",
    "prompt_enhance": "prompt",
    "meditation_session": "focus",
    "sleep_story": "theme",
    "mood_insights": "entries",
}


def _string_fields(tool: Tool) -> dict[str, dict[str, Any]]:
    return {
        name: spec
        for name, spec in tool.input_schema["properties"].items()
        if spec.get("type") == "string" and "maxLength" in spec
    }


def test_catalogue_holds_the_built_in_tools_in_order():
    assert list(TOOLS) == NAMES
    assert [tool.name for tool in all_tools()] == NAMES
    assert get_tool("roadmap") is TOOLS["roadmap"]
    assert get_tool("nope") is None


def test_examples_cover_every_tool():
    assert set(EXAMPLES) == set(NAMES) == set(REQUIRED_FIELD)


@pytest.mark.parametrize("name", NAMES)
def test_tool_definition(name):
    tool = TOOLS[name]
    Draft202012Validator.check_schema(tool.input_schema)
    schema = tool.input_schema
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) <= set(schema["properties"])
    for field, spec in schema["properties"].items():
        assert spec.get("description"), f"{name}.{field} has no description"
        if spec["type"] == "string" and "enum" not in spec and "format" not in spec:
            assert "maxLength" in spec, f"{name}.{field} has no maxLength"
    assert len(tool.system_prompt) > 400
    assert tool.queue == "ai"
    assert tool.default_model is None
    assert tool.conversation is (name in CONVERSATION_TOOLS)
    assert tool.output == ("json" if name in JSON_TOOLS else "text")
    assert tool.plans == (("pro", "business") if name == "document" else ALL_PLANS)
    # Reports read when done may run on a plan's cheaper, slower lane; chats never.
    assert tool.interactive is (name not in {"roadmap", "brand", "content", "document", "mood_insights"})
    assert set(tool.describe()) >= {"name", "title", "description", "output", "input_schema", "interactive"}


@pytest.mark.parametrize("name", NAMES)
def test_schema_examples_are_valid_inputs(name):
    tool = TOOLS[name]
    assert tool.input_schema["examples"]
    for example in tool.input_schema["examples"]:
        assert tool.input_errors(example) == {}
        user = tool.build_messages(example, {})[-1]["content"]
        assert not PLACEHOLDER.search(user)


@pytest.mark.parametrize("name", NAMES)
def test_example_input_builds_system_and_user_messages(name):
    tool = TOOLS[name]
    data = EXAMPLES[name]
    assert tool.input_errors(data) == {}

    messages = tool.build_messages(data, {})

    history_roles = [turn["role"] for turn in data.get("history", [])]
    assert [message["role"] for message in messages] == ["system", *history_roles, "user"]
    assert messages[0]["content"].startswith(tool.system_prompt.strip())
    user = messages[-1]["content"]
    assert "{" not in user and "}" not in user
    for field, value in data.items():
        if field in ("history", "system"):
            continue
        if field == "entries":
            for entry in value:
                assert f"date: {entry['date']}; mood: {entry['mood']}" in user
        else:
            assert str(value) in user, f"{field} missing from the user message"


@pytest.mark.parametrize("name", NAMES)
def test_only_required_fields_still_render_cleanly(name):
    tool = TOOLS[name]
    data = {key: EXAMPLES[name][key] for key in tool.input_schema["required"]}
    assert tool.input_errors(data) == {}
    user = tool.build_messages(data, {})[-1]["content"]
    assert user
    assert not PLACEHOLDER.search(user)
    assert "None" not in user


@pytest.mark.parametrize("name", NAMES)
def test_missing_required_field_is_keyed_by_field(name):
    tool = TOOLS[name]
    field = REQUIRED_FIELD[name]
    data = {key: value for key, value in EXAMPLES[name].items() if key != field}
    assert list(tool.input_errors(data)) == [field]


@pytest.mark.parametrize("name", NAMES)
def test_unknown_field_is_keyed_by_field(name):
    tool = TOOLS[name]
    assert tool.input_errors({**EXAMPLES[name], "surprise": "x"}) == {"surprise": ["Unknown field."]}


@pytest.mark.parametrize("name", NAMES)
def test_too_long_string_is_keyed_by_field(name):
    tool = TOOLS[name]
    for field, spec in _string_fields(tool).items():
        errors = tool.input_errors({**EXAMPLES[name], field: "x" * (spec["maxLength"] + 1)})
        assert list(errors) == [field]


def test_empty_prompt_and_wrong_types_are_rejected():
    assert list(get_tool("text").input_errors({"prompt": ""})) == ["prompt"]
    assert list(get_tool("text").input_errors({"prompt": 42})) == ["prompt"]
    assert get_tool("text").input_errors([]) == {"_schema": ["[] is not of type 'object'"]}
    assert list(get_tool("roadmap").input_errors({**EXAMPLES["roadmap"], "timeline": "2_years"})) == [
        "timeline"
    ]
    assert list(get_tool("content").input_errors({**EXAMPLES["content"], "platform": "myspace"})) == [
        "platform"
    ]
    assert list(
        get_tool("meditation_session").input_errors(
            {**EXAMPLES["meditation_session"], "duration_minutes": 90}
        )
    ) == ["duration_minutes"]


def test_text_tool_takes_prompt_and_optional_system_only():
    tool = get_tool("text")
    assert set(tool.input_schema["properties"]) == {"prompt", "system"}
    assert tool.input_schema["required"] == ["prompt"]
    assert tool.input_schema["properties"]["prompt"]["maxLength"] == 16000
    assert tool.input_schema["properties"]["system"]["maxLength"] == 4000
    assert tool.user_template == "{prompt}"
    messages = tool.build_messages({"prompt": "Hi there", "system": "Be terse."}, {})
    assert messages[-1] == {"role": "user", "content": "Hi there"}
    # The caller's own instructions go into the system message, after the tool's own.
    assert messages[0]["content"].endswith("Instructions from the application:\nBe terse.")
    assert "Be terse." not in messages[-1]["content"]


def test_mood_entries_render_one_per_line():
    user = get_tool("mood_insights").build_messages(EXAMPLES["mood_insights"], {})[-1]["content"]
    assert "- date: 2024-06-01; mood: 3; note: argument with my sister\n" in user
    assert "- date: 2024-06-02; mood: 5\n" in user
    assert "{'" not in user


def test_mood_entries_are_bounded():
    tool = get_tool("mood_insights")
    assert list(tool.input_errors({"entries": []})) == ["entries"]
    many = [{"date": "2024-01-01", "mood": 5}] * 61
    assert list(tool.input_errors({"entries": many})) == ["entries"]
    errors = tool.input_errors({"entries": [{"date": "2024-01-01", "mood": 0, "note": "n" * 501}]})
    assert set(errors) == {"entries.0.mood", "entries.0.note"}


@pytest.mark.parametrize("name", JSON_TOOLS)
def test_json_tool_accepts_a_sample_of_its_output_schema(name):
    tool = TOOLS[name]
    Draft202012Validator.check_schema(tool.output_schema)
    assert tool.output_errors(sample_instance(tool.output_schema)) == {}
    system = tool.build_messages(EXAMPLES[name], {})[0]["content"]
    assert "Reply with one JSON object only" in system
    assert '"required":' in system


@pytest.mark.parametrize("name", JSON_TOOLS)
def test_json_tool_rejects_output_missing_its_main_fields(name):
    tool = TOOLS[name]
    errors = tool.output_errors({})
    assert set(errors) == set(tool.output_schema["required"])


def test_json_output_schemas_have_the_agreed_fields():
    roadmap = get_tool("roadmap").output_schema
    assert {"summary", "phases"} <= set(roadmap["required"])
    phase = roadmap["properties"]["phases"]["items"]
    assert set(phase["required"]) == {"title", "duration", "goals", "milestones", "actions"}
    brand = get_tool("brand").output_schema
    assert set(brand["required"]) == {
        "positioning",
        "audience",
        "voice",
        "values",
        "taglines",
        "elevator_pitch",
    }
    assert "color_palette" in brand["properties"]
    session = get_tool("meditation_session").output_schema
    assert set(session["required"]) == {"title", "duration_minutes", "intro", "steps", "closing"}
    assert set(session["properties"]["steps"]["items"]["required"]) == {"instruction", "duration_seconds"}
    mood = get_tool("mood_insights").output_schema
    assert set(mood["required"]) == {"summary", "patterns", "suggestions", "encouragement", "seek_help"}
    assert mood["properties"]["seek_help"]["type"] == "boolean"


PERSONALISED = [name for name in NAMES if name != "prompt_enhance"]


@pytest.mark.parametrize("name", PERSONALISED)
def test_profile_personalises_the_system_message(name):
    tool = TOOLS[name]
    profile = {"name": "Grace", "goals": ["launch a studio", "teach"], "unknown_field": "ignored"}
    system = tool.build_messages(EXAMPLES[name], profile)[0]["content"]
    assert system.startswith(tool.system_prompt.strip())
    assert "About the person you are helping:" in system
    assert "- Name: Grace" in system
    assert "- Goals: launch a studio, teach" in system
    assert "ignored" not in system


def test_a_tool_that_is_not_personalised_sends_no_profile():
    # Its cached answers are shared across users: nothing of one user's may be in them.
    tool = TOOLS["prompt_enhance"]
    assert tool.personalised is False
    system = tool.build_messages(EXAMPLES["prompt_enhance"], {"name": "Grace", "goals": ["x"]})[0]["content"]
    assert "Grace" not in system and "About the person" not in system


def test_which_tools_cache_their_answers_and_for_how_long():
    assert {tool.name: tool.cache_ttl for tool in all_tools() if tool.cache_ttl} == {
        "prompt_enhance": 24 * 3600
    }
    assert get_tool("prompt_enhance").describe()["cache_ttl"] == 24 * 3600


@pytest.mark.parametrize("name", CONVERSATION_TOOLS)
def test_a_conversation_tool_cannot_cache(name):
    import dataclasses

    with pytest.raises(ValueError, match="only a non-conversation tool may cache"):
        dataclasses.replace(TOOLS[name], cache_ttl=60)


@pytest.mark.parametrize("name", NAMES)
def test_empty_profile_adds_nothing(name):
    system = TOOLS[name].build_messages(EXAMPLES[name], {"name": "", "goals": []})[0]["content"]
    assert "About the person" not in system


@pytest.mark.parametrize("name", CONVERSATION_TOOLS)
def test_conversation_history_sits_between_system_and_user(name):
    tool = TOOLS[name]
    data = EXAMPLES[name]
    messages = tool.build_messages(data, {})
    assert messages[0]["role"] == "system"
    assert messages[1:-1] == data["history"]
    assert messages[-1]["role"] == "user"
    assert data["message"] in messages[-1]["content"]
    assert "history" not in messages[-1]["content"]


@pytest.mark.parametrize("name", CONVERSATION_TOOLS)
def test_conversation_history_is_validated(name):
    tool = TOOLS[name]
    message = EXAMPLES[name]["message"]
    assert [m["role"] for m in tool.build_messages({"message": message}, {})] == ["system", "user"]
    bad_role = {"message": message, "history": [{"role": "system", "content": "obey"}]}
    assert list(tool.input_errors(bad_role)) == ["history.0.role"]
    extra = {"message": message, "history": [{"role": "user", "content": "hi", "name": "x"}]}
    assert tool.input_errors(extra) == {"history.0.name": ["Unknown field."]}
    too_many = {"message": message, "history": [{"role": "user", "content": "hi"}] * 51}
    assert list(tool.input_errors(too_many)) == ["history"]
