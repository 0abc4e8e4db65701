from pathlib import Path

import argus
from argus.fingerprint import code_version


def test_code_version_changes_with_any_source_file(tmp_path: Path, monkeypatch) -> None:
    version = code_version()
    assert version.startswith(argus.__version__ + "+") and len(version.split("+")[1]) == 12
    # A copy of the tree with one edited file hashes differently.
    root = Path(argus.__file__).resolve().parent.parent
    for package in ("argus", "flows", "tasks", "models", "storage"):
        for src in (root / package).rglob("*.py"):
            dst = tmp_path / src.relative_to(root)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(src.read_bytes())
    monkeypatch.setattr(argus, "__file__", str(tmp_path / "argus" / "__init__.py"))
    code_version.cache_clear()
    assert code_version() == version
    (tmp_path / "tasks" / "segment.py").write_text("# changed post-processing\n")
    code_version.cache_clear()
    assert code_version() != version
    code_version.cache_clear()
