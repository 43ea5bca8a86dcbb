"""Vector helpers every layer shares."""
import numpy as np


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """float32 rows (or one vector) scaled to unit L2 norm; zero rows stay zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)
