"""General-purpose tools: free text generation and prompt enhancement."""

from __future__ import annotations

from workers.tools.base import Tool

TEXT = Tool(
    name="text",
    title="Text",
    description="Free-form text generation: send a prompt, get the model's answer.",
    input_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["prompt"],
        "properties": {
            "prompt": {
                "type": "string",
                "minLength": 1,
                "maxLength": 16000,
                "description": "What you want the model to do or answer.",
            },
            "system": {
                "type": "string",
                "maxLength": 4000,
                "description": "Your own instructions for the model (role, tone, rules) for this job.",
            },
        },
        "examples": [{"prompt": "Explain what a message queue is to a new developer in three sentences."}],
    },
    # The caller's optional `system` is their own instruction, not prompt text:
    # the pipeline applies it, so it is deliberately absent from the template.
    system_prompt=(
        "You are a capable, careful assistant. Answer the request directly and accurately, "
        "in the length and format it calls for: short questions get short answers, and long "
        "or structured work gets clear headings or lists. If the request is ambiguous, make a "
        "sensible assumption and say which one you made rather than refusing. Do not invent "
        "facts, figures, quotations or sources; when you are unsure, say so. Reply in the "
        "language of the request unless told otherwise."
    ),
    user_template="{prompt}",
    output="text",
    max_output_tokens=2000,
    temperature=0.7,
)

PROMPT_ENHANCE = Tool(
    name="prompt_enhance",
    title="Prompt enhancer",
    description=(
        "Rewrite a rough prompt into a specific, well-structured one with a role, context, "
        "constraints and an output format."
    ),
    input_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["prompt"],
        "properties": {
            "prompt": {
                "type": "string",
                "minLength": 1,
                "maxLength": 8000,
                "description": "The prompt to improve, as you would have sent it.",
            },
            "goal": {
                "type": "string",
                "maxLength": 500,
                "description": "What the answer to the prompt will be used for, if the prompt does not say.",
            },
            "task_type": {
                "type": "string",
                "enum": ["general", "writing", "coding", "analysis", "research", "image"],
                "description": "The kind of task the prompt is for; image means an image-generation model.",
            },
            "audience": {
                "type": "string",
                "maxLength": 200,
                "description": "Who the final answer is for (e.g. executives, beginners, children).",
            },
        },
        "examples": [
            {
                "prompt": "write a blog post about remote work",
                "goal": "Attract HR leaders to our consultancy",
                "task_type": "writing",
            }
        ],
    },
    system_prompt=(
        "You are an expert prompt engineer. You are given a prompt someone intends to send to an "
        "AI model, and you rewrite it so that the model will produce a much better answer on the "
        "first try.\n\n"
        "A strong rewrite:\n"
        "- gives the model a fitting role or expertise;\n"
        "- states the task in one clear, specific sentence;\n"
        "- supplies the context the model needs (audience, purpose, background) drawn from the "
        "original and from the details given;\n"
        "- lists constraints: length, tone, scope, what to include and what to avoid;\n"
        "- names the output format (headings, bullet list, table, JSON, code only, and so on);\n"
        "- for image prompts, describes subject, composition, style, lighting and mood instead.\n\n"
        "Keep the author's intent, language and every fact they gave; never add facts about them "
        "or their business that they did not provide. Where essential information is missing, "
        "insert a clearly marked placeholder such as [target audience] rather than guessing. "
        "Keep the rewrite as short as it can be while complete, and write it in the same "
        "language as the original. Reply with the improved prompt only: no preamble, no "
        "explanation of the changes, no quotation marks or code fences around it."
    ),
    user_template=(
        "Improve this prompt.\n\n"
        "Prompt:\n{prompt}\n\n"
        "What the answer is for: {goal}\n"
        "Kind of task: {task_type}\n"
        "Audience of the answer: {audience}"
    ),
    output="text",
    # Inputs are usually short; the cap leaves room to rewrite a long prompt in full.
    max_output_tokens=1000,
    temperature=0.3,
    # The same rough prompt is enhanced the same way for anyone: the rewrite uses only
    # what the prompt and its fields say, never the person's profile.
    cache_ttl=24 * 3600,
    personalised=False,
)
