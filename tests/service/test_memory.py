"""service.memory: large freed blocks are reused, not page-faulted in fresh each time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from service.http.app import create_app
from service.runtime import memory
from service.settings import Settings

# 40 MB arrays (above glibc's own largest mmap threshold) made and freed five times; the minor
# page faults of the last four: each fresh mmap faults its pages in again (one per 4 KB page,
# fewer where the kernel maps huge pages: ~570 per array here).
PROBE = """
import resource, sys
import numpy as np
from service.runtime import memory
if sys.argv[1] == "keep":
    assert memory.keep_large_blocks()
np.ones(5_000_000)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    np.ones(5_000_000)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    )
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keeping_large_blocks_stops_fresh_page_faults() -> None:
    default, kept = _faults("default"), _faults("keep")
    assert default > 4 * 100  # each array page-faulted in anew
    assert kept < default / 10  # (0 here)


def test_the_app_keeps_large_blocks_unless_told_not_to(
    zoo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(memory, "keep_large_blocks", lambda: calls.append(True) or True)
    create_app(Settings(model_dir=zoo_dir))
    assert calls == [True]
    create_app(Settings(model_dir=zoo_dir, keep_large_blocks=False))
    assert calls == [True]
