"""The whole flow with ARGUS_OBJECT_STORE=s3://... against SeaweedFS: artifacts land in the bucket,
content-addressed and with their sha256, and a re-run reuses them without writing anything again."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from minio import Minio
from s3_server import SeaweedFS

from argus.demo_data import write_demo_inputs

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server")]


def test_study_artifacts_in_s3_and_rerun_reuses_them(
    argus_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seaweedfs: SeaweedFS
) -> None:
    from argus.db import db_session
    from argus.results import study_result
    from flows.batch import analyze_paths
    from storage.s3_store import S3ObjectStore
    from tasks.resources import clear_caches, object_store

    bucket, prefix = f"argus-flow-{secrets.token_hex(4)}", "site-a/argus"
    monkeypatch.setenv("ARGUS_OBJECT_STORE", f"s3://{bucket}/{prefix}")
    for name, value in seaweedfs.env().items():
        monkeypatch.setenv(name, value)
    clear_caches()
    _, surface_dir = write_demo_inputs(tmp_path / "inputs")

    outcome = analyze_paths([str(surface_dir)])

    assert outcome.errors == [] and len(outcome.run_ids) == 1
    store = object_store()
    assert isinstance(store, S3ObjectStore) and store.url == f"s3://{bucket}/{prefix}"  # bucket was created
    with db_session() as session:
        result = study_result(session, outcome.run_ids[0])
    artifacts = result["artifacts"]
    assert {"input", "frames", "mask", "overlay", "report_json", "report_md"} <= {
        a["kind"] for a in artifacts
    }
    # Everything stored is recorded, and nothing else was written.
    assert store.list() == sorted({a["key"] for a in artifacts})
    raw = Minio(seaweedfs.endpoint, seaweedfs.access_key, seaweedfs.secret_key, secure=False)
    modified = {}
    for a in artifacts:
        assert a["key"].startswith(f"studies/{result['study_uid']}/")
        assert a["sha256"] in a["key"].split("/")  # content-addressed under a readable prefix
        info = raw.stat_object(bucket, f"{prefix}/{a['key']}")
        assert info.metadata["x-amz-meta-sha256"] == a["sha256"] and info.size == a["size"]
        assert len(store.get_bytes(a["key"], expected_sha256=a["sha256"])) == a["size"]
        modified[a["key"]] = info.last_modified

    again = analyze_paths([str(surface_dir)])

    assert again.run_ids == outcome.run_ids  # the completed run is reused
    assert store.list() == sorted(modified)
    for key, when in modified.items():  # re-loading the inputs found them in place: nothing rewritten
        assert raw.stat_object(bucket, f"{prefix}/{key}").last_modified == when
