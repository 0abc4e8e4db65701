"""GPU slot: on CUDA, model sections hold a Prefect global concurrency slot so flow runs share a GPU."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from prefect.concurrency.sync import concurrency

from tasks.resources import device

GPU_LIMIT = "gpu"


@contextlib.contextmanager
def gpu_slot(gate: bool | None = None) -> Iterator[None]:
    """Hold one ``gpu`` slot around the block when running on CUDA (or when ``gate`` forces it).

    strict=True: a missing limit is an error, not a silent free-for-all (`prefect gcl create gpu --limit 1`).
    On CPU there is nothing to share, so no slot is taken and no server round-trip is paid.
    """
    if gate is None:
        gate = device() == "cuda"
    if not gate:
        yield
        return
    with concurrency(GPU_LIMIT, occupy=1, strict=True):
        yield
