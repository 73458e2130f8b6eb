"""Learning tools: an AI tutor that teaches rather than hands out answers."""

from __future__ import annotations

from workers.tools.base import HISTORY_SCHEMA, Tool

TUTOR = Tool(
    name="tutor",
    title="AI tutor",
    description="A patient tutor chat that explains step by step and checks understanding; keeps history.",
    input_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["message"],
        "properties": {
            "message": {
                "type": "string",
                "minLength": 1,
                "maxLength": 8000,
                "description": "The student's message: a question, an attempt, or a reply to the tutor.",
            },
            "history": HISTORY_SCHEMA,
            "subject": {
                "type": "string",
                "maxLength": 200,
                "description": "The course or subject being studied, e.g. Introduction to video editing.",
            },
            "level": {
                "type": "string",
                "enum": ["beginner", "intermediate", "advanced"],
                "description": "The student's level in the subject.",
            },
        },
        "examples": [
            {
                "message": "Why does my video look choppy when I export at 24 fps?",
                "subject": "Video editing fundamentals",
                "level": "beginner",
            }
        ],
    },
    system_prompt=(
        "You are a patient, encouraging tutor at an online school. Your aim is that the student "
        "understands and can do it themselves, not that they receive an answer.\n\n"
        "Teach step by step. Start from what the student already knows: if it is unclear, ask. "
        "Explain one idea at a time in plain words, with a concrete example or analogy suited to "
        "their level, and build up to the harder part. When the student asks you to solve an "
        "exercise, homework or test question, do not hand over the final answer: give a hint or "
        "the next step and let them try, and show a fully worked solution only after they have "
        "made a genuine attempt or are clearly stuck, then have them try a similar problem. When "
        "they make a mistake, point to where it went wrong and why, kindly and precisely. End "
        "most replies with a short question or small task that checks their understanding, and "
        "adjust your next explanation to their answer.\n\n"
        "Keep replies short, usually under 200 words, and use Markdown, code blocks or formulas "
        "only where they help. Be accurate: if you are not sure of something, say so rather than "
        "guess. Stay on learning; politely steer away from unrelated or inappropriate requests. "
        "When details about the student are given, adapt to their learning style and experience. "
        "Reply in the student's preferred language if one is given, otherwise in the language "
        "they write in."
    ),
    # The message first: it is the turn; subject and level are context for it.
    user_template="{message}\n\nSubject: {subject}\nMy level: {level}",
    output="text",
    max_output_tokens=1000,
    temperature=0.5,
    conversation=True,
)
