"""docs/bad-inputs.md is the table generated from tests/badinput/cases.py."""

from pathlib import Path

from cases import table_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "bad-inputs.md"


def test_docs_table_is_current() -> None:
    assert DOC.read_text() == table_markdown(), "run: python tests/badinput/cases.py > docs/bad-inputs.md"
