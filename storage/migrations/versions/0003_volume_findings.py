"""Findings of CT/MR volumes: the slice range, in-plane extent, depth and volume of each lesion.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 00:00:00

A lesion in a volume is one finding row spanning slices ``slice_first``..``slice_last`` (``slice_count``
slices of the loaded series); ``slice_index`` stays the slice to look at (its largest section). Rows
written before this revision are 2-D findings and keep NULL here.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INTEGERS = ("slice_first", "slice_last", "slice_count")
_FLOATS = ("width_mm", "height_mm", "depth_mm", "volume_mm3")


def upgrade() -> None:
    with op.batch_alter_table("findings") as batch:
        for name in _INTEGERS:
            batch.add_column(sa.Column(name, sa.Integer(), nullable=True))
        for name in _FLOATS:
            batch.add_column(sa.Column(name, sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("findings") as batch:
        for name in reversed(_INTEGERS + _FLOATS):
            batch.drop_column(name)
