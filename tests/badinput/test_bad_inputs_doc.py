"""docs/bad-inputs.md is the table generated from tests/badinput/bad_inputs_table.py."""

from pathlib import Path

from bad_inputs_table import table_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "bad-inputs.md"


def test_docs_table_is_current() -> None:
    assert DOC.read_text() == table_markdown(), "run: python tests/badinput/bad_inputs_table.py > docs/bad-inputs.md"
