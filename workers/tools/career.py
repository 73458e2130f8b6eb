"""Career and business tools: roadmap, brand, content, documents and a coach."""

from __future__ import annotations

from typing import Any

from workers.tools.base import HISTORY_SCHEMA, Tool


def _string_list(description: str, min_items: int = 0) -> dict[str, Any]:
    # A fresh dict each time, so no two places in a schema share one object.
    schema: dict[str, Any] = {"type": "array", "items": {"type": "string"}, "description": description}
    if min_items:
        schema["minItems"] = min_items
    return schema


ROADMAP = Tool(
    name="roadmap",
    interactive=False,  # a report read when done, not watched as it streams
    title="Roadmap builder",
    description="A phased, time-boxed plan with goals, milestones and concrete actions towards a goal.",
    input_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["goal", "timeline"],
        "properties": {
            "goal": {
                "type": "string",
                "minLength": 1,
                "maxLength": 2000,
                "description": "What you want to achieve, e.g. launch a consulting practice or move into UX.",
            },
            "timeline": {
                "type": "string",
                "enum": ["30_days", "90_days", "6_months", "1_year"],
                "description": "How long the roadmap should span.",
            },
            "current_situation": {
                "type": "string",
                "maxLength": 2000,
                "description": "Where you are today: role, experience, what you have already done.",
            },
            "hours_per_week": {
                "type": "integer",
                "minimum": 1,
                "maximum": 80,
                "description": "Hours a week you can give to this.",
            },
            "constraints": {
                "type": "string",
                "maxLength": 1000,
                "description": "Limits to plan around: budget, caregiving, a current job, location.",
            },
        },
        "examples": [
            {
                "goal": "Leave corporate HR and launch a coaching business for new managers",
                "timeline": "6_months",
                "current_situation": "12 years in HR, certified coach, no clients yet",
                "hours_per_week": 10,
            }
        ],
    },
    system_prompt=(
        "You are an expert career and business strategist who helps accomplished professionals, "
        "many of them women changing careers, turn an ambition into a plan they can start this "
        "week.\n\n"
        "Build a roadmap that fills the requested timeline exactly and is split into three to six "
        "sequential phases. Give each phase a short title, its duration in plain words (e.g. "
        "'Weeks 1-4' or 'Months 2-3'), two to four goals, one to three milestones that can be "
        "checked off and measured (a number, a date or a visible result), and three to six "
        "concrete actions that start with a verb. Fit the workload to the hours available and the "
        "constraints given; where money or risk matters, include a step that tests demand or "
        "limits the downside before a large commitment. Cover networking and relationship "
        "building where it helps the goal. Name a few specific, widely available resources in "
        "`resources` and the main risks with how to reduce each in `risks`. The summary is two or "
        "three sentences on the strategy and the first step to take.\n\n"
        "Be specific and practical; avoid generic advice such as 'stay motivated'. Keep every "
        "list item to one sentence. Do not promise income or results. When details about the "
        "person are given, build on their experience, skills and goals. Write the values in the "
        "person's preferred language if one is given; keep the JSON keys in English."
    ),
    user_template=(
        "Create a roadmap.\n\n"
        "Goal: {goal}\n"
        "Timeline: {timeline}\n"
        "Current situation: {current_situation}\n"
        "Hours available per week: {hours_per_week}\n"
        "Constraints: {constraints}"
    ),
    output="json",
    output_schema={
        "type": "object",
        "additionalProperties": True,
        "required": ["title", "summary", "phases"],
        "properties": {
            "title": {"type": "string", "description": "A short name for the roadmap."},
            "summary": {
                "type": "string",
                "description": "The strategy and the first step, in 2-3 sentences.",
            },
            "phases": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "additionalProperties": True,
                    "required": ["title", "duration", "goals", "milestones", "actions"],
                    "properties": {
                        "title": {"type": "string"},
                        "duration": {"type": "string", "description": "e.g. 'Weeks 1-4'."},
                        "goals": _string_list("What the phase achieves."),
                        "milestones": _string_list("Checkable, measurable results."),
                        "actions": _string_list("Concrete steps, each starting with a verb."),
                    },
                },
            },
            "risks": _string_list("Main risks, each with how to reduce it."),
            "resources": _string_list("Specific books, courses, tools or communities."),
        },
    },
    max_output_tokens=2000,
    temperature=0.6,
)

BRAND = Tool(
    name="brand",
    interactive=False,  # a report read when done, not watched as it streams
    title="Brand creator",
    description="A personal or business brand: positioning, audience, voice, values, taglines and pitch.",
    input_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["description"],
        "properties": {
            "description": {
                "type": "string",
                "minLength": 1,
                "maxLength": 4000,
                "description": "Who you are and what you offer, in your own words.",
            },
            "brand_name": {
                "type": "string",
                "maxLength": 200,
                "description": "The name of the business or personal brand, if you have one.",
            },
            "audience": {
                "type": "string",
                "maxLength": 500,
                "description": "Who you want to reach.",
            },
            "personality": {
                "type": "string",
                "maxLength": 200,
                "description": "A few words for how you want to come across, e.g. warm, bold, expert.",
            },
            "differentiators": {
                "type": "string",
                "maxLength": 1000,
                "description": "What makes you different from others who offer something similar.",
            },
        },
        "examples": [
            {
                "description": "Former finance director helping women founders understand their numbers",
                "brand_name": "Clear Ledger",
                "audience": "Women running service businesses in their first three years",
                "personality": "warm, direct, expert",
            }
        ],
    },
    system_prompt=(
        "You are a senior brand strategist. From what a person tells you about themselves or "
        "their business, you create a clear, distinctive brand foundation they can use at once on "
        "a website, a LinkedIn profile and in conversation.\n\n"
        "Produce: a positioning statement of one or two sentences (for whom, what, and why it is "
        "different); a vivid description of the ideal audience, their problems and what they "
        "want; the brand voice in two or three sentences with what it sounds like and what it "
        "never sounds like; three to five values, each a short phrase; three to five taglines "
        "under ten words each, varied in approach; and an elevator pitch of 40 to 70 words in the "
        "first person. Add a colour palette of three to five colours with a name, a hex code "
        "(#RRGGBB) and where to use each, if it suits the brand.\n\n"
        "Ground every element in the details given: their real experience, strengths and "
        "audience. Avoid clichés ('passionate', 'synergy', 'unlock your potential') and claims "
        "they cannot back up, and do not reuse well-known slogans or trademarks. When details "
        "about the person are given, reflect their industry, goals and archetype. Write the "
        "values in the person's preferred language if one is given; keep the JSON keys in English."
    ),
    user_template=(
        "Create a brand.\n\n"
        "About me and my offer:\n{description}\n\n"
        "Brand name: {brand_name}\n"
        "Audience: {audience}\n"
        "Personality: {personality}\n"
        "What sets me apart: {differentiators}"
    ),
    output="json",
    output_schema={
        "type": "object",
        "additionalProperties": True,
        "required": ["positioning", "audience", "voice", "values", "taglines", "elevator_pitch"],
        "properties": {
            "positioning": {"type": "string"},
            "audience": {"type": "string"},
            "voice": {"type": "string"},
            "values": _string_list("Three to five short value phrases.", min_items=1),
            "taglines": _string_list("Three to five taglines under ten words.", min_items=1),
            "elevator_pitch": {"type": "string"},
            "color_palette": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": True,
                    "required": ["name", "hex"],
                    "properties": {
                        "name": {"type": "string"},
                        "hex": {"type": "string", "description": "#RRGGBB"},
                        "use": {"type": "string", "description": "Where the colour is used."},
                    },
                },
            },
        },
    },
    max_output_tokens=1500,
    temperature=0.8,
)

CONTENT = Tool(
    name="content",
    interactive=False,  # a report read when done, not watched as it streams
    title="Content generator",
    description="Ready-to-post content for one platform: LinkedIn, Instagram, X, a blog and more.",
    input_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["topic", "platform"],
        "properties": {
            "topic": {
                "type": "string",
                "minLength": 1,
                "maxLength": 2000,
                "description": "What the content is about: the idea, story or offer.",
            },
            "platform": {
                "type": "string",
                "enum": [
                    "linkedin",
                    "instagram",
                    "x",
                    "facebook",
                    "threads",
                    "tiktok",
                    "youtube",
                    "blog",
                    "newsletter",
                ],
                "description": "Where it will be published.",
            },
            "tone": {
                "type": "string",
                "enum": ["professional", "friendly", "inspirational", "educational", "bold", "humorous"],
                "description": "How it should sound.",
            },
            "audience": {
                "type": "string",
                "maxLength": 500,
                "description": "Who it is for.",
            },
            "call_to_action": {
                "type": "string",
                "maxLength": 200,
                "description": "What readers should do next, e.g. book a call or join the waitlist.",
            },
            "variations": {
                "type": "integer",
                "minimum": 1,
                "maximum": 5,
                "description": "How many alternative versions to write (one when omitted).",
            },
        },
        "examples": [
            {
                "topic": "Three lessons from my first year running a consultancy after 15 years in banking",
                "platform": "linkedin",
                "tone": "inspirational",
                "call_to_action": "Follow for weekly notes on career change",
            }
        ],
    },
    system_prompt=(
        "You are an experienced social media and content writer. You write content that is ready "
        "to publish on the named platform, in the author's own first-person voice, and that "
        "earns attention honestly.\n\n"
        "Follow the platform's conventions:\n"
        "- LinkedIn: a one-line hook, short paragraphs, a personal insight or story, under 1,300 "
        "characters, a closing question or call to action, three to five relevant hashtags.\n"
        "- Instagram: a caption with a strong first line, line breaks, a call to action, up to ten "
        "hashtags, and one line suggesting the image or carousel.\n"
        "- X: posts of at most 280 characters; use a numbered thread only when the idea needs it.\n"
        "- Threads and Facebook: conversational, short, inviting replies.\n"
        "- TikTok and YouTube: a spoken script with a hook in the first three seconds, short "
        "lines, on-screen text cues in brackets, and a closing call to action.\n"
        "- Blog: a title, an introduction, subheadings, 600 to 900 words, a conclusion.\n"
        "- Newsletter: a subject line, preview text, then a warm, skimmable body.\n\n"
        "When several variations are asked for, separate them with a line '---' and make each take "
        "a different angle. Use the tone and call to action given. Do not invent statistics, "
        "quotes, clients or results; if a number would help, use a placeholder in [brackets]. "
        "Avoid clickbait and empty buzzwords. When details about the person are given, draw on "
        "their industry, experience and goals. Write in the person's preferred language if one is "
        "given, otherwise in the language of the topic. Reply with the content only."
    ),
    user_template=(
        "Write content.\n\n"
        "Platform: {platform}\n"
        "Topic:\n{topic}\n\n"
        "Tone: {tone}\n"
        "Audience: {audience}\n"
        "Call to action: {call_to_action}\n"
        "Number of variations: {variations}"
    ),
    output="text",
    max_output_tokens=1500,
    temperature=0.8,
)

DOCUMENT = Tool(
    name="document",
    interactive=False,  # a report read when done, not watched as it streams
    title="Document generator",
    description="Professional documents from your details: resume, cover letter, business plan, bio.",
    input_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["document_type", "details"],
        "properties": {
            "document_type": {
                "type": "string",
                "enum": [
                    "resume",
                    "cover_letter",
                    "business_plan",
                    "linkedin_about",
                    "professional_bio",
                    "proposal",
                    "pitch_email",
                ],
                "description": "The kind of document to write.",
            },
            "details": {
                "type": "string",
                "minLength": 1,
                "maxLength": 8000,
                "description": (
                    "The facts to use: experience, achievements, education, the business, the offer. "
                    "Nothing is invented beyond these."
                ),
            },
            "target": {
                "type": "string",
                "maxLength": 1000,
                "description": "Who it is for: the job posting, company, investor or client.",
            },
            "length": {
                "type": "string",
                "enum": ["short", "standard", "detailed"],
                "description": "How long the document should be.",
            },
        },
        "examples": [
            {
                "document_type": "cover_letter",
                "details": "8 years teaching high school; built the school's data dashboard; UX certificate",
                "target": "Junior UX researcher at a health-tech startup",
            }
        ],
    },
    system_prompt=(
        "You are a professional writer of career and business documents: resumes, cover letters, "
        "business plans, LinkedIn 'About' sections, professional bios, proposals and pitch "
        "emails. You write documents that a hiring manager, investor or client takes seriously.\n\n"
        "Use only the facts you are given. Never invent employers, titles, dates, degrees, "
        "figures, clients or achievements; where a fact the document needs is missing, insert a "
        "placeholder in square brackets such as [year] or [revenue]. Present transferable "
        "experience in the language of the target role or reader, and show impact with the "
        "numbers provided.\n\n"
        "Follow the conventions of each type: a resume is plain, ATS-friendly Markdown with a "
        "summary, experience in reverse chronological order, strong action verbs and achievement "
        "bullets, and skills; a cover letter is under 400 words, addressed to the target, with a "
        "specific opening, two or three pieces of evidence and a confident close; a business plan "
        "covers the executive summary, problem, solution, market, business model, marketing, "
        "operations, financial outline and milestones; a LinkedIn About is first person and under "
        "2,000 characters; a professional bio is third person; a proposal covers the client's "
        "need, approach, deliverables, timeline and investment; a pitch email is short with one "
        "clear ask. Respect the requested length. Write in clear, confident, plain language "
        "without clichés. When details about the person are given, use them. Write in the "
        "person's preferred language if one is given. Reply with the document only, in Markdown."
    ),
    user_template=(
        "Write a document.\n\n"
        "Document type: {document_type}\n"
        "Length: {length}\n"
        "For: {target}\n\n"
        "Details to use:\n{details}"
    ),
    output="text",
    max_output_tokens=2000,
    temperature=0.4,
    plans=("pro", "business"),
)

COACH = Tool(
    name="coach",
    title="AI coach",
    description="A career and business coach to talk things through with; keeps the conversation's history.",
    input_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["message"],
        "properties": {
            "message": {
                "type": "string",
                "minLength": 1,
                "maxLength": 8000,
                "description": "Your message to the coach.",
            },
            "history": HISTORY_SCHEMA,
        },
        "examples": [
            {"message": "I have two job offers and can't decide. Can you help me think it through?"}
        ],
    },
    system_prompt=(
        "You are a warm, direct career and business coach for accomplished professionals, many of "
        "them women changing careers or starting a business. You help people get clear, decide "
        "and act.\n\n"
        "Listen first: reflect back what you heard in a sentence, and ask one or two focused "
        "questions when you need to understand more before advising. Then help them see their "
        "options, weigh them honestly and choose a concrete next step they can take within a "
        "week. Build on their strengths and experience; challenge limiting beliefs kindly but do "
        "not flatter. Keep replies conversational and short, usually under 250 words, with a list "
        "only when it genuinely helps. Remember what was said earlier in the conversation.\n\n"
        "You are not a lawyer, accountant, financial adviser or therapist: give general guidance "
        "and suggest the right professional for legal, tax, investment or medical questions. If "
        "someone mentions serious distress or thoughts of harming themselves, respond with care "
        "and encourage them to contact a mental-health professional or a local crisis line, or "
        "emergency services if they are in danger. When details about the person are given, use "
        "them naturally. Reply in the person's preferred language if one is given, otherwise in "
        "the language they write in."
    ),
    user_template="{message}",
    output="text",
    max_output_tokens=1000,
    temperature=0.7,
    conversation=True,
)
