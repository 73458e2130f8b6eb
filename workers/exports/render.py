"""Documents rendered as files: Markdown, PDF (fpdf2) and DOCX (python-docx)."""

from __future__ import annotations

import io
import re
import unicodedata
from typing import TYPE_CHECKING

from workers.exports.documents import Block, Document

if TYPE_CHECKING:
    from fpdf import FPDF

MARKDOWN = "text/markdown; charset=utf-8"
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
JSON = "application/json"

# XML (DOCX) refuses control characters other than tab and newline.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def to_markdown(document: Document) -> bytes:
    lines = [f"# {document.title}", ""]
    if document.subtitle:
        lines += [f"_{document.subtitle}_", ""]
    for block in document.blocks:
        if block.kind == "heading":
            lines.append(f"{'#' * (block.level + 1)} {block.text}")
        elif block.kind == "paragraph":
            lines.append(block.text)
        elif block.kind == "bullets":
            lines += [f"- {item}" for item in block.items]
        else:
            lines += [f"{number}. {item}" for number, item in enumerate(block.items, start=1)]
        lines.append("")
    return "\n".join(lines).encode()


# ---------------------------------------------------------------- PDF

_PDF_SIZES = {0: 20, 1: 15, 2: 12.5, 3: 11.5}
_BODY_SIZE = 11
_LINE = 6
# The PDF core fonts cover Windows-1252 (Western European text and typographic
# punctuation); the few common characters beyond it are spelled out, and any
# other becomes "?" rather than failing the export.
_PDF_REPLACEMENTS = str.maketrans(
    {"→": "->", "←": "<-", "⇒": "=>", "≥": ">=", "≤": "<=", "≠": "!=", "✓": "v", "✔": "v", "✗": "x",
     "\u2212": "-", "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\u200b": ""}
)  # fmt: skip


def pdf_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).translate(_PDF_REPLACEMENTS)
    return _CONTROL.sub("", text).encode("cp1252", "replace").decode("cp1252")


def to_pdf(document: Document) -> bytes:
    # fpdf2 and python-docx (with Pillow, fontTools and lxml) are imported when a document
    # is made, not by every process that imports the export tasks: their memory would be
    # held by every worker process, most of which never render a document.
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.core_fonts_encoding = "cp1252"
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.set_title(pdf_text(document.title))
    pdf.set_creator("Conveyor")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", _PDF_SIZES[0])
    pdf.multi_cell(0, 9, pdf_text(document.title), new_x="LMARGIN", new_y="NEXT")
    if document.subtitle:
        pdf.set_font("Helvetica", "I", 10)
        pdf.set_text_color(100, 100, 100)
        pdf.multi_cell(0, _LINE, pdf_text(document.subtitle), new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0, 0, 0)
    pdf.ln(3)
    for block in document.blocks:
        _pdf_block(pdf, block)
    return bytes(pdf.output())


def _pdf_block(pdf: FPDF, block: Block) -> None:
    if block.kind == "heading":
        pdf.ln(3 if block.level > 1 else 5)
        pdf.set_font("Helvetica", "B", _PDF_SIZES.get(block.level, _BODY_SIZE))
        pdf.multi_cell(0, _LINE + 1, pdf_text(block.text), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(1)
        return
    pdf.set_font("Helvetica", "", _BODY_SIZE)
    if block.kind == "paragraph":
        pdf.multi_cell(0, _LINE, pdf_text(block.text), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
        return
    for number, item in enumerate(block.items, start=1):
        marker = "\u2022" if block.kind == "bullets" else f"{number}."
        pdf.set_x(pdf.l_margin + 4)
        pdf.cell(7, _LINE, pdf_text(marker))
        pdf.multi_cell(0, _LINE, pdf_text(item), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)


# ---------------------------------------------------------------- DOCX


def docx_text(text: str) -> str:
    return _CONTROL.sub("", text)


def to_docx(document: Document) -> bytes:
    from docx import Document as DocxDocument

    docx = DocxDocument()
    docx.core_properties.title = docx_text(document.title)[:255]
    docx.core_properties.author = "Conveyor"
    docx.add_heading(docx_text(document.title), level=0)
    if document.subtitle:
        docx.add_paragraph(docx_text(document.subtitle), style="Subtitle")
    for block in document.blocks:
        if block.kind == "heading":
            docx.add_heading(docx_text(block.text), level=block.level)
        elif block.kind == "paragraph":
            docx.add_paragraph(docx_text(block.text))
        else:
            style = "List Bullet" if block.kind == "bullets" else "List Number"
            for item in block.items:
                docx.add_paragraph(docx_text(item), style=style)
    buffer = io.BytesIO()
    docx.save(buffer)
    return buffer.getvalue()
