"""BENCHMARKS.md is merged section by section: re-running one benchmark keeps the others' figures."""

from __future__ import annotations

from pathlib import Path

from benchmarks.run import write_report


def test_sections_are_replaced_one_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    write_report({"flow": ["## Flow", "", "flow v1"]}, path)
    write_report({"audit": ["## Audit", "", "audit v1"]}, path)
    text = write_report({"flow": ["## Flow", "", "flow v2"]}, path)

    assert "flow v2" in text and "flow v1" not in text
    assert "audit v1" in text
    # Sections keep the registry's order whatever order they were measured in, each with its own stamp.
    assert text.index("## Flow") < text.index("## Audit")
    assert text.count("_Run ") == 2
