"""Wellness tools: guided meditation sessions, sleep stories and mood insights.

None of them is medical care; their prompts say so and route crisis signs to
professional help.
"""

from __future__ import annotations

from workers.tools.base import Tool

MEDITATION_SESSION = Tool(
    name="meditation_session",
    title="Meditation session",
    description="A guided meditation script, timed step by step, for a focus and length you choose.",
    input_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["focus", "duration_minutes"],
        "properties": {
            "focus": {
                "type": "string",
                "enum": [
                    "stress",
                    "anxiety",
                    "sleep",
                    "focus",
                    "energy",
                    "gratitude",
                    "self_compassion",
                    "body_awareness",
                ],
                "description": "What the session should help with.",
            },
            "duration_minutes": {
                "type": "integer",
                "minimum": 3,
                "maximum": 30,
                "description": "How long the session should last, in minutes.",
            },
            "technique": {
                "type": "string",
                "enum": ["breathing", "body_scan", "visualization", "loving_kindness", "mindfulness"],
                "description": "A technique to use; the session chooses one when omitted.",
            },
            "experience": {
                "type": "string",
                "enum": ["new", "some", "experienced"],
                "description": "How familiar you are with meditation.",
            },
            "current_feeling": {
                "type": "string",
                "maxLength": 300,
                "description": "How you feel right now, in a few words.",
            },
        },
        "examples": [
            {"focus": "stress", "duration_minutes": 10, "technique": "breathing", "current_feeling": "tense"}
        ],
    },
    system_prompt=(
        "You are an experienced, gentle meditation teacher writing a guided session that will be "
        "read aloud or shown one step at a time in a wellness app.\n\n"
        "Write a calm introduction that settles the listener and says what the session is for; "
        "then a sequence of steps, each a short spoken instruction in the second person, present "
        "tense, with the seconds it should last, leaving real silence for practice (long steps "
        "are mostly silence after the instruction); then a closing that brings attention back to "
        "the room and offers one thing to carry into the day or into sleep. Together the steps "
        "must add up to the requested duration, within about ten percent, allowing roughly 30 "
        "seconds each for the introduction and closing. Use the requested technique if one is "
        "given, and keep instructions simple for people who are new to meditation.\n\n"
        "Use soft, inclusive, non-judgemental language and no religious content. Keep breathing "
        "cues comfortable: no long breath holds or forced breathing, and invite the listener to "
        "return to natural breathing if they feel dizzy or uncomfortable. Offer choices ('close "
        "your eyes, or lower your gaze') so the session suits different bodies and abilities. "
        "This is a relaxation practice, not medical or psychological treatment: do not claim to "
        "cure or treat anything. When details about the person are given, reflect their "
        "wellbeing focus. Write the text in the person's preferred language if one is given; keep "
        "the JSON keys in English."
    ),
    user_template=(
        "Create a guided meditation.\n\n"
        "Focus: {focus}\n"
        "Length in minutes: {duration_minutes}\n"
        "Technique: {technique}\n"
        "Meditation experience: {experience}\n"
        "How I feel right now: {current_feeling}"
    ),
    output="json",
    output_schema={
        "type": "object",
        "additionalProperties": True,
        "required": ["title", "duration_minutes", "intro", "steps", "closing"],
        "properties": {
            "title": {"type": "string"},
            "duration_minutes": {"type": "integer", "minimum": 1},
            "intro": {"type": "string", "description": "Spoken introduction."},
            "steps": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "additionalProperties": True,
                    "required": ["instruction", "duration_seconds"],
                    "properties": {
                        "instruction": {"type": "string", "description": "What is said at this step."},
                        "duration_seconds": {
                            "type": "integer",
                            "minimum": 5,
                            "description": "How long the step lasts, silence included.",
                        },
                    },
                },
            },
            "closing": {"type": "string", "description": "Spoken closing."},
        },
    },
    max_output_tokens=1500,
    temperature=0.7,
)

SLEEP_STORY = Tool(
    name="sleep_story",
    title="Sleep story",
    description="A slow, soothing bedtime story written to help the listener drift off.",
    input_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["theme"],
        "properties": {
            "theme": {
                "type": "string",
                "minLength": 1,
                "maxLength": 300,
                "description": "The setting or idea of the story, e.g. a quiet lighthouse on a foggy coast.",
            },
            "length": {
                "type": "string",
                "enum": ["short", "medium", "long"],
                "description": "About 400, 700 or 1,000 words (roughly 4, 7 or 10 minutes read slowly).",
            },
            "listener": {
                "type": "string",
                "enum": ["adult", "child"],
                "description": "Who the story is for.",
            },
            "include": {
                "type": "string",
                "maxLength": 500,
                "description": "Things you would like in the story, e.g. rain, a cat, a cabin.",
            },
            "avoid": {
                "type": "string",
                "maxLength": 500,
                "description": "Things to leave out, e.g. water, spiders, the dark.",
            },
        },
        "examples": [{"theme": "a night train through snowy mountains", "length": "medium"}],
    },
    system_prompt=(
        "You are a writer of sleep stories: gentle tales read aloud slowly to help someone fall "
        "asleep. The story's job is to quiet the mind, not to entertain it.\n\n"
        "Write in calm, simple, flowing sentences, in the present or past tense, rich in soft "
        "sensory detail: warm light, quiet sounds, textures, slow movement. Nothing happens that "
        "creates suspense, conflict, danger, loss or surprise; there are no cliffhangers, no "
        "villains and no questions left open. Let the pace grow slower and the sentences softer "
        "towards the end, with gentle repetition, and end with the scene at rest and an "
        "invitation to sleep. For a child, use simple words, a cosy familiar world and a "
        "comforting ending; for an adult, a more descriptive, meditative style.\n\n"
        "Respect the requested length (short is about 400 words, medium about 700, long about "
        "1,000; medium when not given), include what the listener asked for and leave out "
        "entirely anything they asked to avoid. Start with the title on its own line, then the "
        "story as plain paragraphs with no headings, lists or stage directions, so it reads well "
        "aloud or through text-to-speech. When details about the person are given, let their "
        "interests colour the setting. Write in the person's preferred language if one is given."
    ),
    user_template=(
        "Write a sleep story.\n\n"
        "Theme: {theme}\n"
        "Length: {length}\n"
        "Listener: {listener}\n"
        "Please include: {include}\n"
        "Please avoid: {avoid}"
    ),
    output="text",
    max_output_tokens=1600,
    temperature=0.9,
)

MOOD_INSIGHTS = Tool(
    name="mood_insights",
    interactive=False,  # a report read when done, not watched as it streams
    title="Mood insights",
    description="Gentle insights from a mood log: patterns, suggestions, encouragement. Not medical advice.",
    input_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["entries"],
        "properties": {
            "entries": {
                "type": "array",
                "minItems": 1,
                "maxItems": 60,
                "description": "Mood log entries, one per check-in, oldest first.",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["date", "mood"],
                    "properties": {
                        "date": {
                            "type": "string",
                            "format": "date",
                            "description": "The day of the check-in, YYYY-MM-DD.",
                        },
                        "mood": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": 10,
                            "description": "Mood from 1 (very low) to 10 (very good).",
                        },
                        "note": {
                            "type": "string",
                            "maxLength": 500,
                            "description": "What happened or how it felt, in a few words.",
                        },
                    },
                },
            },
            "question": {
                "type": "string",
                "maxLength": 500,
                "description": "Anything in particular you would like to understand about your mood.",
            },
        },
        "examples": [
            {
                "entries": [
                    {"date": "2024-05-01", "mood": 4, "note": "slept badly, long meetings"},
                    {"date": "2024-05-02", "mood": 6, "note": "walk at lunch"},
                    {"date": "2024-05-03", "mood": 7},
                ]
            }
        ],
    },
    system_prompt=(
        "You are a supportive wellbeing companion in a wellness app. From a person's mood log you "
        "offer gentle, grounded insight that helps them notice patterns and take small, kind "
        "steps. You are not a doctor or therapist, and this is not medical advice.\n\n"
        "Read the entries in date order. In the summary, describe the overall picture in two or "
        "three sentences (the range, the trend, notable days). Name two to four patterns that the "
        "data actually shows, such as links between notes and mood, weekdays or trends, and say "
        "how sure you can be when there are few entries; never invent data. Give two to four "
        "practical, low-effort suggestions tied to those patterns (sleep, movement, time outside, "
        "connection, rest, routines). End with a sincere, specific word of encouragement that "
        "acknowledges what they are already doing well. Speak directly to the person, warmly, "
        "without judgement, jargon or toxic positivity.\n\n"
        "Safety comes first. Never diagnose a condition or suggest medication. Set seek_help to "
        "true if any note mentions self-harm, suicidal thoughts, feeling hopeless or unsafe, "
        "abuse, or if mood stays at 3 or below for most of a week or more; then use "
        "support_message to say clearly and kindly that talking to a doctor, therapist or "
        "counsellor could help, and that if they are in danger or thinking of harming themselves "
        "they should contact local emergency services or a crisis line now. Otherwise set "
        "seek_help to false and you may leave support_message empty. When details about the "
        "person are given, reflect their wellbeing focus. Write the text in the person's "
        "preferred language if one is given; keep the JSON keys in English."
    ),
    # A list of objects renders one entry per line as "date: ...; mood: ...; note: ...".
    user_template=(
        "Here is my mood log (mood from 1, very low, to 10, very good):\n"
        "{entries}\n\n"
        "What I would like to understand: {question}"
    ),
    output="json",
    output_schema={
        "type": "object",
        "additionalProperties": True,
        "required": ["summary", "patterns", "suggestions", "encouragement", "seek_help"],
        "properties": {
            "summary": {"type": "string"},
            "patterns": {"type": "array", "items": {"type": "string"}},
            "suggestions": {"type": "array", "items": {"type": "string"}},
            "encouragement": {"type": "string"},
            "seek_help": {
                "type": "boolean",
                "description": "True when the log shows signs the person should seek professional help.",
            },
            "support_message": {
                "type": "string",
                "description": "When seek_help is true: a kind, clear nudge towards professional help.",
            },
        },
    },
    max_output_tokens=1000,
    temperature=0.3,
)
