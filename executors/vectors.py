"""Vector helpers every layer shares."""
import contextlib
import sys
from types import ModuleType
from typing import Iterator

import numpy as np


WIDEN_FLOATS = 1 << 20  # float16 values widened at once in a long block (4 MB as float32)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """float32 rows (or one vector) scaled to unit L2 norm; zero rows stay zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def loaded_torch() -> ModuleType | None:
    """torch where this process has imported it, else None. torch widens float16 rows and runs small products
    several times faster than numpy, but a process without it (a CLI text search on a saved ONNX text tower)
    would pay 1.5 s to import it for a few milliseconds saved; long-lived ones import it as they warm up."""
    if 'torch' not in sys.modules:
        return None
    import torch  # waits for an import another thread has under way

    return torch


def float16_scores(rows: np.ndarray, query: np.ndarray, wide: np.ndarray | None = None) -> np.ndarray:
    """The inner products of float16 `rows` with a float32 `query`, the rows widened to float32 first, into `wide`
    (a float32 buffer as wide as the rows; rows beyond its length are scored a buffer's length at a time), else
    into a widening_buffer: a long block widened a piece at a time stays in cache (2.6 ms instead of 5 for
    25,000 x 512). By torch where the process has it (3-6x sooner), else numpy."""
    wide = widening_buffer(rows) if wide is None else wide
    if len(rows) > len(wide):
        step = len(wide)
        return np.concatenate([float16_scores(rows[i:i + step], query, wide) for i in range(0, len(rows), step)])
    wide = wide[:len(rows)]
    torch = loaded_torch()
    if torch is None:
        np.copyto(wide, rows)
        return wide @ query
    widened = torch.from_numpy(wide)
    widened.copy_(torch.from_numpy(rows))
    return torch.mv(widened, torch.from_numpy(query)).numpy()


def widening_buffer(rows: np.ndarray) -> np.ndarray:
    """A float32 buffer float16_scores widens `rows` into: all of them, or WIDEN_FLOATS values' worth of them.
    Keep one for rows scored again and again: a new 4 MB block per search stays in glibc's per-thread arenas."""
    dim = rows.shape[-1]
    return np.empty((min(len(rows), max(1, WIDEN_FLOATS // max(dim, 1))), dim), dtype=np.float32)


def float32_scores(rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """The inner products of float32 `rows` with `query`: by torch where the process has it, on the calling
    thread's torch threads (one during a search: torch_on_this_thread), else numpy. numpy's BLAS wakes a pool
    of its own for a long product, whose threads then spin: twice the CPU of a search over 2,500 cues."""
    rows, query = np.ascontiguousarray(rows, dtype=np.float32), np.ascontiguousarray(query, dtype=np.float32)
    torch = loaded_torch()
    if torch is None:
        return rows @ query
    return torch.mv(torch.from_numpy(rows), torch.from_numpy(query)).numpy()


def best_first(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the `k` highest `scores`, best first, ties in index order: np.argsort(-scores, kind='stable')[:k],
    without sorting all of a long array (0.4 ms instead of 2.6 ms at 30,000)."""
    if len(scores) <= 2 * k or not np.isfinite(scores).all():
        return np.argsort(-scores, kind='stable')[:k]
    threshold = np.partition(scores, len(scores) - k)[len(scores) - k]
    best = np.flatnonzero(scores >= threshold)  # every score tied with the k-th too
    return best[np.argsort(-scores[best], kind='stable')][:k]


def import_torch() -> None:
    """What a long-lived process does once before its searches (see loaded_torch)."""
    with contextlib.suppress(ImportError):
        import torch  # noqa: F401


@contextlib.contextmanager
def torch_on_this_thread() -> Iterator[None]:
    """Run torch's operations in the block on the calling thread alone. A search's exact scores are many small
    products (one per candidate video, ~0.1 ms each); torch's pool splits each over every core, and on a busy
    machine each split waits for a pool thread the OS has set aside: 20-40 ms at p99 and 2-10x the CPU, against
    0.16 ms and 0.08 ms here (bench.api, load average 7 on 2 cores). Torch's thread count is per thread once a
    thread has used torch; only a thread's first use while the block runs takes the lower count with it.
    A process without torch has nothing to set."""
    torch = loaded_torch()
    if torch is None:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
