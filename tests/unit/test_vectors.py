"""The vector helpers a search's hot path runs: the k best of many scores, and products of float32 rows."""
import numpy as np
import pytest

from executors.vectors import WIDEN_FLOATS, best_first, float16_scores, float32_scores, widening_buffer


@pytest.mark.parametrize('length, k', [(5, 10), (30, 10), (1000, 1), (30_000, 100), (30_000, 5_000)])
def test_the_k_best_are_those_a_full_stable_sort_gives_ties_in_index_order(length, k):
    rng = np.random.default_rng(length + k)
    scores = np.round(rng.normal(size=length), 2).astype(np.float32)  # many ties, some across the k-th place
    assert np.array_equal(best_first(scores, k), np.argsort(-scores, kind='stable')[:k])


def test_the_k_best_of_scores_with_nan_are_as_a_full_sort_gives_them():
    scores = np.linspace(-1, 1, 500, dtype=np.float32)
    scores[[3, 400]] = np.nan
    assert np.array_equal(best_first(scores, 10), np.argsort(-scores, kind='stable')[:10])
    assert 400 not in best_first(scores, 10)


def test_float32_scores_are_the_rows_inner_products_with_the_query():
    rng = np.random.default_rng(0)
    rows, query = rng.normal(size=(3000, 64)).astype(np.float32), rng.normal(size=64).astype(np.float32)
    assert np.allclose(float32_scores(rows, query), rows @ query, atol=1e-4)
    assert np.allclose(float32_scores(rows.astype(np.float64), query.astype(np.float64)), rows @ query, atol=1e-4)


def test_a_long_block_of_float16_rows_is_scored_as_a_short_one_is():
    """Past WIDEN_FLOATS the rows are widened a piece at a time (cue embeddings by the ten thousand)."""
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(5000, 512)).astype(np.float16)
    query = rng.normal(size=512).astype(np.float32)
    assert len(rows) * rows.shape[1] > WIDEN_FLOATS
    expected = rows.astype(np.float32) @ query
    assert np.allclose(float16_scores(rows, query), expected, atol=1e-3)
    assert len(widening_buffer(rows)) < len(rows)
    assert np.allclose(float16_scores(rows, query, np.empty((700, 512), np.float32)), expected, atol=1e-3)
