"""Public helpers for testing crmkit and programs built on it.

.. versionadded:: 0.1
"""

from __future__ import annotations

from crmkit.testing.plugins import HookCall, RecordingPlugin
from crmkit.testing.sample import SampleBook, build_sample_book

__all__ = ["HookCall", "RecordingPlugin", "SampleBook", "build_sample_book"]
