"""Exported files are real documents: PDFs and DOCX files parsed back show the content."""

import io

import docx
import pypdf

from workers.exports.documents import from_markdown, from_output
from workers.exports.render import to_docx, to_markdown, to_pdf

ROADMAP = {
    "title": "From teaching to UX research",
    "summary": "Build research skills on real projects, then show them.",
    "phases": [
        {
            "title": "Foundations",
            "duration": "Weeks 1-4",
            "goals": ["Learn interview techniques"],
            "milestones": ["Run 3 practice interviews"],
            "actions": ["Read 'Just Enough Research'"],
        },
        {
            "title": "Portfolio",
            "duration": "Weeks 5-10",
            "goals": ["Publish two case studies"],
            "milestones": ["Case study on the school dashboard"],
            "actions": ["Interview five teachers"],
        },
    ],
    "risks": ["Burnout — keep to 6 hours a week"],
    "resources": ["Nielsen Norman Group articles"],
}

DOCUMENT = """# Cover letter

Dear hiring team,

I taught for **eight years** and built the school's data dashboard.

## Experience

- Designed a survey for 400 students
- Ran usability tests with teachers

## Why this role

I want to research → design → ship.
"""


def pdf_text(data: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


def roadmap_document():
    return from_output(tool="roadmap", tool_title="Roadmap builder", output=ROADMAP, job_input={})


def test_a_roadmap_pdf_shows_each_phase_with_its_duration_goals_and_milestones():
    data = to_pdf(roadmap_document())
    assert data.startswith(b"%PDF-")
    text = pdf_text(data)
    for expected in (
        "From teaching to UX research",
        "Phase 1: Foundations",
        "Weeks 1-4",
        "Learn interview techniques",
        "Run 3 practice interviews",
        "Phase 2: Portfolio",
        "Case study on the school dashboard",
        "Burnout — keep to 6 hours a week",  # Windows-1252 punctuation survives
    ):
        assert expected in text, expected
    assert text.index("Phase 1: Foundations") < text.index("Phase 2: Portfolio")


def test_a_roadmap_docx_has_a_heading_per_phase_and_lists_of_goals():
    parsed = docx.Document(io.BytesIO(to_docx(roadmap_document())))
    paragraphs = [(paragraph.style.name, paragraph.text) for paragraph in parsed.paragraphs]
    assert ("Title", "From teaching to UX research") in paragraphs
    assert ("Heading 1", "Phase 1: Foundations") in paragraphs
    assert ("Heading 1", "Phase 2: Portfolio") in paragraphs
    assert ("Heading 2", "Milestones") in paragraphs
    assert ("List Bullet", "Run 3 practice interviews") in paragraphs
    assert ("Normal", "Duration: Weeks 5-10") in paragraphs
    assert parsed.core_properties.title == "From teaching to UX research"


def test_a_markdown_document_becomes_sections_in_pdf_and_docx():
    document = from_output(
        tool="document",
        tool_title="Document generator",
        output={"text": DOCUMENT},
        job_input={"document_type": "cover_letter"},
    )
    assert document.title == "Cover letter"
    assert document.headings() == ["Experience", "Why this role"]

    text = pdf_text(to_pdf(document))
    assert "Experience" in text and "Why this role" in text
    assert "I taught for eight years" in text  # the Markdown emphasis is gone, the words stay
    assert "Ran usability tests with teachers" in text
    assert "research -> design -> ship" in text  # spelled out: the PDF core font has no arrow

    parsed = docx.Document(io.BytesIO(to_docx(document)))
    headings = [p.text for p in parsed.paragraphs if p.style.name.startswith("Heading")]
    assert headings == ["Experience", "Why this role"]
    bullets = [p.text for p in parsed.paragraphs if p.style.name == "List Bullet"]
    assert bullets == ["Designed a survey for 400 students", "Ran usability tests with teachers"]


def test_plain_text_without_headings_is_paragraphs_under_the_tool_title():
    document = from_markdown("First paragraph.\nStill first.\n\nSecond one.", default_title="Text")
    assert document.title == "Text"
    assert [block.text for block in document.blocks] == ["First paragraph. Still first.", "Second one."]
    text = pdf_text(to_pdf(document))
    assert "First paragraph. Still first." in text and "Second one." in text


def test_text_the_pdf_font_cannot_show_does_not_fail_the_export():
    document = from_markdown("Kanji 漢字 and emoji 🎉 and Ærøskøbing", default_title="Mixed")
    text = pdf_text(to_pdf(document))
    assert "Ærøskøbing" in text and "?" in text
    assert "漢字" in docx.Document(io.BytesIO(to_docx(document))).paragraphs[1].text  # DOCX keeps all of it


def test_other_json_outputs_become_a_section_per_field():
    brand = {
        "positioning": "Clear numbers for women founders.",
        "values": ["Clarity", "Warmth"],
        "color_palette": [{"name": "Ink", "hex": "#112233"}],
    }
    document = from_output(tool="brand", tool_title="Brand creator", output=brand, job_input={})
    assert document.headings() == ["Positioning", "Values", "Color palette"]
    markdown = to_markdown(document).decode()
    assert "## Values\n\n- Clarity\n- Warmth" in markdown
    assert "Name: Ink; Hex: #112233" in markdown
