"""Keep freed tensor memory inside the process on glibc, so CPU steps stop paying page faults.

Every CPU training step allocates and frees the same temporaries: for the demo model the
logits alone are rows·context × vocab floats (32·64·1456·4 B ≈ 12 MB), plus their soft-cap,
softmax and gradients. glibc returns blocks that large to the kernel (its mmap threshold
and heap trimming) and the next step faults them back in, zero-filled. Measured on the
demo model, 1 thread: 7.7 s of kernel time per 150 steps, against 0.6 s with the heap kept
(`bench/train.py` prints the comparison). The cost is that RSS stays at the step's
high-water mark instead of shrinking between steps, which a training process holds anyway.
`ungrok score` keeps it too: every checkpoint runs the same batches, whose head output is
rows × vocabulary floats (13 MB for paper-11.5m on rvp3.1). Measured there, 2 threads, best of 5
per checkpoint: fp32 220 → 198 ms, bf16 compiled 94 → 86 ms, bf16 eager unchanged (127 ms).
"""

from __future__ import annotations

import ctypes
import sys

# mallopt(3) parameters, from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
# glibc refuses an mmap threshold above HEAP_MAX_SIZE / 2 (32 MiB on 64-bit); larger blocks
# (a paper-size model's logits) are mapped and unmapped as before.
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 1 << 30  # never give the heap's top back below 1 GiB of slack
TOP_PAD = 64 << 20  # grow the heap in 64 MiB steps


def keep_freed_memory() -> bool:
    """Raise glibc's trim and mmap thresholds for this process; False where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    settings = ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD))
    return all(mallopt(param, value) == 1 for param, value in settings)
