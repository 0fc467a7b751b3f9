"""Public helpers for testing crmkit and programs built on it.

:class:`StoreContract` (the store contract suite) needs ``pytest`` and
``hypothesis``; it is imported on first use, so the other helpers work without
them.

.. versionadded:: 0.1
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmkit.testing.plugins import HookCall, RecordingPlugin
from crmkit.testing.sample import SampleBook, build_sample_book

if TYPE_CHECKING:
    from crmkit.testing.contract import StoreContract

__all__ = ["HookCall", "RecordingPlugin", "SampleBook", "StoreContract", "build_sample_book"]


def __getattr__(name: str) -> Any:
    if name == "StoreContract":
        from crmkit.testing.contract import StoreContract

        return StoreContract
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
