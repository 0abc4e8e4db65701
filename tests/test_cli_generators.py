"""Generator versions and detector architectures at the command line (subprocesses, as a user runs them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runner import run_argus

from models.synthetic import LATEST_GENERATOR

pytestmark = pytest.mark.slow


def test_evaluate_uses_the_latest_generator_version_unless_told(tmp_path: Path) -> None:
    base = ["evaluate", "--domain", "industrial", "--images", "6", "--reporter-studies", "0", "--json"]
    default = run_argus(base, tmp_path)
    assert default.returncode == 0, default.stderr
    chosen = run_argus([*base, "--generator-version", "1"], tmp_path)
    assert chosen.returncode == 0, chosen.stderr
    by_default, by_choice = json.loads(default.stdout), json.loads(chosen.stdout)
    # The latest, whatever the shipped detector's card names: every model is scored on the same split.
    assert by_default["generator_version"] == LATEST_GENERATOR != 1
    assert by_choice["generator_version"] == 1
    assert by_default["held_out_seed"] == by_choice["held_out_seed"] == 20_000  # not the training's 10 000
    # Another version is other data: other instances to find.
    assert by_default["detector"]["instances"] != by_choice["detector"]["instances"]


def test_train_refuses_an_unknown_architecture_or_generator_version(tmp_path: Path) -> None:
    wrong_arch = run_argus(["train", "detector", "--domain", "industrial", "--arch", "unet"], tmp_path)
    assert wrong_arch.returncode == 2
    assert "unknown detector architecture 'unet'" in wrong_arch.stderr
    assert "yolo12n" in wrong_arch.stderr
    wrong_version = run_argus(
        ["train", "segmenter", "--domain", "medical", "--generator-version", "9"], tmp_path
    )
    assert wrong_version.returncode == 2 and "unknown generator version 9" in wrong_version.stderr
    assert not (tmp_path / "training").exists()  # nothing was generated
