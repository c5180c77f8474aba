"""keep_freed_memory: a freed large block stays mapped (no page faults on the next step)."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Run in a fresh interpreter: mallopt changes the whole process, and pytest's own heap
# would blur the RSS reading.
SCRIPT = """
import os, sys
from ungrok.heap import keep_freed_memory
keep = sys.argv[1] == "keep"
if keep:
    assert keep_freed_memory()
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page
before = rss()
block = bytearray(24 << 20)  # zero-filled, so every page is touched
del block
print(rss() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
@pytest.mark.parametrize("mode", ["default", "keep"])
def test_freed_block_stays_mapped_only_when_kept(mode):
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True)
    kept = int(out.stdout.strip())
    if mode == "keep":
        assert kept >= 20 << 20  # the 24 MiB block's pages are still resident after del
    else:
        assert kept < 4 << 20  # glibc unmapped it on free
