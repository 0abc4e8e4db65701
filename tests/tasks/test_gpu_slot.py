"""The GPU gate against a real Prefect server: strict, and holding exactly one slot while inside."""

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server")]


def _active_slots(name: str) -> int:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(name).active_slots


def test_gpu_slot_is_strict_and_held_only_inside() -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    from tasks.gpu import GPU_LIMIT, gpu_slot

    with pytest.raises(Exception, match=GPU_LIMIT), gpu_slot(gate=True):
        pass  # no limit configured: refuse rather than let every run onto the GPU
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=GPU_LIMIT, limit=1))
    try:
        with gpu_slot(gate=True):
            assert _active_slots(GPU_LIMIT) == 1
        assert _active_slots(GPU_LIMIT) == 0
        with gpu_slot(gate=False):
            assert _active_slots(GPU_LIMIT) == 0  # on CPU nothing is taken
    finally:
        with get_client(sync_client=True) as client:
            client.delete_global_concurrency_limit_by_name(GPU_LIMIT)
