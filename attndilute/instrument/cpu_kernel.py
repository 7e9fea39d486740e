"""Eq. 5-6 in one pass over a CPU attention call's weights and scores (a small C kernel).

On a CPU the online reduction is bound by memory traffic, not arithmetic. The torch form
(:func:`attndilute.entropy.source_entropy` with scores) reads every (Nq, Nk) map five times: the
product ``α ⊙ s`` is written and read back, and the weights and the product each go through a
matrix product with the query sources. The kernel (``_entropy_kernel.c``, built by ``setup.py``
as an optional extension and called here through ctypes, which releases the GIL) reads the
weights and the scores once, row by row, and keeps only sums. It is hand-written because no
library offers a fused "softmax entropy by token class" on CPU; ``torch.compile`` would need a C++
compiler at run time, and numba, tried first, added 0.17 GB to the process (LLVM).

For query i of one (group, head) map, with ``m = max_j α_ij`` (at the largest score
``s* = max_j s_ij``; the softmax is monotone) the log-partition is ``lse = s* - log m`` and, for a
key source t,

    H_i^{->t} = Σ_{j∈t} α_ij (lse - s_ij) = -log(m) · mass_t + Σ_{j∈t} α_ij (s* - s_ij)   (Eq. 5-6)

Both terms are non-negative, so float32 sums lose nothing to cancellation, whatever the size of
the logits (the torch form must check for it); a row's sums go to float64 every 4096 keys. Keys
with zero weight (masked by ``-inf``, ``finfo.min`` or a large negative bias) add nothing; a row of
zeros has no entropy; a NaN weight gives NaN. One logarithm per row; for contiguous float32 maps
no temporaries (the extra memory is the (G, heads, 2, 3, 3) result), otherwise float32 copies of
about 2^20 entries at a time (at least one group).

Where the extension was not built (no C compiler at install), or ``ATTNDILUTE_KERNEL=torch``,
every call takes the torch form.
"""

from __future__ import annotations

import ctypes
import importlib.util
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from functools import cache

import torch

NUM_SOURCES = 3
#: keys summed in float32 before a row's sums move to float64 (``KEY_BLOCK`` in the C source)
KEY_BLOCK = 4096
#: work items per thread: the pool hands them out as threads free up (a core busy elsewhere)
PIECES_PER_THREAD = 4
#: calls with fewer entries run in the calling thread: handing them to the pool costs more than
#: it saves (a ViT-S map, 6 x 197 x 197, takes about 0.25 ms on one core)
SERIAL_ENTRIES = 1 << 20
#: entries converted to float32 at a time when the maps come in another dtype
CHUNK_ELEMENTS = 1 << 20  # 4 MB per converted map, as the torch form's chunks


def available() -> bool:
    """Whether the kernel runs: the extension was built and ``ATTNDILUTE_KERNEL`` is not ``torch``."""
    if os.environ.get("ATTNDILUTE_KERNEL", "").strip().lower() == "torch":
        return False
    return _library() is not None


def applies(attn: torch.Tensor, scores: torch.Tensor | None) -> bool:
    """Whether :func:`group_sums` takes this call: CPU maps with their scores, kernel available."""
    return scores is not None and attn.device.type == "cpu" and attn.dtype != torch.float64 and available()


def group_sums(
    attn: torch.Tensor,
    scores: torch.Tensor,
    query_sources: torch.Tensor,
    key_rows: torch.Tensor,
    *,
    threads: int | None = None,
) -> torch.Tensor:
    """Entropy and attention mass of every group and head by query and key source (Eq. 5-6).

    Args:
        attn: (G, heads, Nq, Nk) post-softmax weights on the CPU, float32 or a lower precision.
        scores: (G, heads, Nq, Nk) the logits ``attn`` is the softmax of (every bias and mask added).
        query_sources: (G, Nq) int64 source of every query (``masks.REAL``, ``INPUT_PAD``, ``LAYOUT_PAD``).
        key_rows: (G, 3, Nk) float32 one-hot key sources, one row per source.
        threads: worker threads (default ``torch.get_num_threads()``, 1 for a small call).

    Returns:
        (G, heads, 2, 3, 3) float64: ``[..., 0, s, t]`` the entropy queries of source s spend on
        keys of source t, ``[..., 1, s, t]`` the attention mass, as :func:`source_entropy` gives.
    """
    g, heads, nq, nk = attn.shape
    if any(t.device.type != "cpu" for t in (attn, scores, query_sources, key_rows)):
        raise ValueError("the CPU entropy kernel takes CPU tensors only")
    sources_ok = query_sources.numel() == 0 or 0 <= int(query_sources.min()) <= int(query_sources.max()) < 3
    if scores.shape != attn.shape or query_sources.shape != (g, nq) or key_rows.shape != (g, NUM_SOURCES, nk):
        raise ValueError(  # the compiled loops do not check bounds
            f"attention {tuple(attn.shape)}, scores {tuple(scores.shape)}, query sources "
            f"{tuple(query_sources.shape)} and key rows {tuple(key_rows.shape)} do not match"
        )
    if not sources_ok:
        raise ValueError("query sources must be 0, 1 or 2 (masks.REAL, INPUT_PAD, LAYOUT_PAD)")
    out = torch.zeros(g, heads, 2, NUM_SOURCES, NUM_SOURCES, dtype=torch.float64)
    q = query_sources.to(torch.int64).contiguous()
    k = key_rows.to(torch.float32).contiguous()
    threads = max(1, threads or (1 if attn.numel() < SERIAL_ENTRIES else torch.get_num_threads()))
    whole = attn.dtype == scores.dtype == torch.float32 and attn.is_contiguous() and scores.is_contiguous()
    step = max(1, g) if whole else max(1, CHUNK_ELEMENTS // max(1, heads * nq * nk))
    for start in range(0, g, step):
        sl = slice(start, min(g, start + step))
        p = attn[sl].detach().to(torch.float32).contiguous()  # no copy: float32 contiguous
        s = scores[sl].detach().to(torch.float32).contiguous()
        sources = q[sl].data_ptr(), k[sl].data_ptr(), out[sl].data_ptr()
        _run((p.data_ptr(), s.data_ptr(), heads, nq, nk, *sources), (sl.stop - sl.start) * heads, threads)
    return out.clamp_min_(0.0)


def _run(pointers: tuple, blocks: int, threads: int) -> None:
    """The kernel over ``blocks`` (group, head) maps, split over ``threads`` (disjoint outputs)."""
    kernel = _library().attndilute_group_sums
    if threads == 1 or blocks == 1:
        kernel(*pointers, 0, blocks)
        return
    pieces = min(blocks, PIECES_PER_THREAD * threads)
    edges = [blocks * r // pieces for r in range(pieces + 1)]
    pool = _pool(threads)
    futures = [pool.submit(kernel, *pointers, lo, hi) for lo, hi in itertools.pairwise(edges) if hi > lo]
    try:
        for future in futures:
            future.result()
    finally:  # an interrupt: no piece may outlive the tensors its pointers point into
        for future in futures:
            future.cancel()
        wait(futures)


_POOL: dict[tuple[int, int], ThreadPoolExecutor] = {}
_POOL_LOCK = threading.Lock()


def _pool(threads: int) -> ThreadPoolExecutor:
    """A thread pool of this size for this process (a forked child makes its own)."""
    key = (os.getpid(), threads)
    with _POOL_LOCK:
        if key not in _POOL:
            _POOL[key] = ThreadPoolExecutor(threads, thread_name_prefix="attndilute-entropy")
        return _POOL[key]


#: the C source's ``KERNEL_VERSION``: a library built from another version of the source (an
#: editable install not rebuilt after a change) is not called
KERNEL_VERSION = 1


@cache
def _library() -> ctypes.CDLL | None:
    """The built extension as a C library, or None where it was not built or does not match."""
    spec = importlib.util.find_spec("attndilute.instrument._entropy_kernel")
    if spec is None or not spec.origin:
        return None
    try:
        library = ctypes.CDLL(spec.origin)
        version, function = library.attndilute_kernel_version, library.attndilute_group_sums
    except (OSError, AttributeError):
        return None
    version.argtypes, version.restype = [], ctypes.c_int
    if version() != KERNEL_VERSION:
        return None
    pointer, size = ctypes.c_void_p, ctypes.c_int64
    function.argtypes = [pointer, pointer, size, size, size, pointer, pointer, pointer, size, size]
    function.restype = None
    return library
