"""Ending tasks we own (used by ingest and relay alike)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

logger = logging.getLogger(__name__)


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel a task and wait until it has ended.

    Unlike awaiting it under suppress(CancelledError), this lets a cancellation of
    the caller itself propagate; an error the task ended with is logged, not lost.
    """
    if task is None:
        return
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled() and task.exception() is not None:
        logger.error("task %s failed", task.get_name(), exc_info=task.exception())
