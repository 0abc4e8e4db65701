"""Run the benchmarks and write BENCHMARKS.md: ``python -m benchmarks.run [--only NAME ...]``.

Each benchmark fills one section of BENCHMARKS.md, stamped with its own date and machine; running a
subset (``--only audit``) replaces just those sections and keeps the others as they were measured.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path

from benchmarks.machine import describe_machine

OUTPUT = Path("BENCHMARKS.md")
HEADER = [
    "# Benchmarks",
    "",
    "Measured by `make bench` (`python -m benchmarks.run`; `--only NAME` re-runs one section). Ratios are",
    "taken within one run, on one machine; each section says when and where it ran.",
    "",
]


# Imported when run: each benchmark pulls in its own heavy dependencies (torch, a database driver).
def _flow() -> list[str]:
    from benchmarks.flow import section

    return section()


def _audit() -> list[str]:
    from benchmarks.audit import section

    return section()


def _models() -> list[str]:
    from benchmarks.models import section

    return section()


def _detectors() -> list[str]:
    from benchmarks.detectors import section

    return section()


def _reporter() -> list[str]:
    from benchmarks.reporter import section

    return section()


SECTIONS: dict[str, Callable[[], list[str]]] = {
    "flow": _flow,
    "models": _models,
    "detectors": _detectors,
    "reporter": _reporter,
    "audit": _audit,
}


def _marker(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"


def _existing_sections(text: str) -> dict[str, str]:
    found = {}
    for name in SECTIONS:
        start, end = _marker(name)
        match = re.search(re.escape(start) + r"\n(.*?)\n" + re.escape(end), text, flags=re.S)
        if match:
            found[name] = match.group(1)
    return found


def write_report(results: dict[str, list[str]], path: Path = OUTPUT) -> str:
    """Merge freshly measured sections into ``path`` (others kept) and return the new text."""
    sections = _existing_sections(path.read_text()) if path.exists() else {}
    stamp = f"_Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {describe_machine()}._"
    for name, lines in results.items():
        title, *body = lines
        sections[name] = "\n".join([title, "", stamp, *body])
    parts = list(HEADER)
    for name in SECTIONS:
        if name in sections:
            start, end = _marker(name)
            parts += [start, sections[name], end, ""]
    text = "\n".join(parts)
    path.write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, run the chosen benchmarks and update BENCHMARKS.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="+", choices=sorted(SECTIONS), help="Run just these sections.")
    args = parser.parse_args(argv)
    names = args.only or list(SECTIONS)
    results = {}
    for name in names:
        print(f"running benchmark {name} ...", flush=True)
        results[name] = SECTIONS[name]()
    print(write_report(results))


if __name__ == "__main__":
    main()
