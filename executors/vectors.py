"""Vector helpers every layer shares."""
import contextlib
from typing import Iterator

import numpy as np


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """float32 rows (or one vector) scaled to unit L2 norm; zero rows stay zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


@contextlib.contextmanager
def torch_on_this_thread() -> Iterator[None]:
    """Run torch's operations in the block on the calling thread alone. A search's exact scores are many small
    products (one per candidate video, ~0.1 ms each); torch's pool splits each over every core, and on a busy
    machine each split waits for a pool thread the OS has set aside: 20-40 ms at p99 and 2-10x the CPU, against
    0.16 ms and 0.08 ms here (bench.api, load average 7 on 2 cores). Torch's thread count is per thread once a
    thread has used torch; only a thread's first use while the block runs takes the lower count with it."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
