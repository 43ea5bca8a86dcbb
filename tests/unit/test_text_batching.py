"""Concurrent text queries share one forward pass of the text tower (executors/models/text_batching.py), and
each gets exactly the embedding it gets alone."""
import threading
import time

import numpy as np
import pytest

from executors.documents import DocList, QueryDoc
from executors.errors import ModelError
from executors.models.text_batching import QueryBatcher
from executors.text_encoder import TextEncoder

# lengths from 3 to 40 tokens: in a shared pass the short ones run padded to the longest
QUERIES = ['dog', 'a man rides a bike along the beach', 'two children build a sandcastle', 'rain',
           'fireworks over a city at night, seen from a boat on the river while people cheer and boats sound horns',
           'a red car', 'Ünïcödé café 東京 🚲', 'a close-up of a cat sleeping on a sofa']


def concurrently(function, arguments: list) -> list:
    """function(argument) for each argument, each in its own thread, all started at once; their results in order."""
    results, errors = [None] * len(arguments), []
    start = threading.Barrier(len(arguments))

    def call(n: int) -> None:
        start.wait()
        try:
            results[n] = function(arguments[n])
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(len(arguments))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


@pytest.mark.parametrize('runtime, passes', [('auto', 1), ('torch', len(QUERIES))])
def test_concurrent_queries_share_a_pass_and_get_exactly_their_single_query_embeddings(tiny_checkpoint, runtime,
                                                                                       passes):
    """ONNX Runtime (auto) gives each text's row exactly in a shared pass; torch does not, so it runs one each."""
    alone = TextEncoder(model=str(tiny_checkpoint), device='cpu', text_model='clip', runtime=runtime, cache_size=0)
    expected = [alone.encode_queries(DocList[QueryDoc]([QueryDoc(text=text)]))[0].embedding for text in QUERIES]
    assert alone.batchers['clip'].passes == len(QUERIES)

    # a shared pass waits (up to 10 s) until all 8 queries have joined it: one pass, whatever the machine's load
    shared = TextEncoder(model=str(tiny_checkpoint), device='cpu', text_model='clip', runtime=runtime, cache_size=0,
                         batch_size=len(QUERIES))
    shared.batchers['clip'].wait_s = 10.0
    shared.encode_queries(DocList[QueryDoc]([QueryDoc(text='load the model first')]))  # the rush starts
    found = concurrently(lambda text: shared.encode_queries(DocList[QueryDoc]([QueryDoc(text=text)]))[0].embedding,
                         QUERIES)
    assert shared.batchers['clip'].passes == 1 + passes
    for text, embedding, single in zip(QUERIES, found, expected):
        assert np.array_equal(embedding, single), text  # bit for bit, not approximately


def test_a_batch_embeds_each_distinct_text_once_and_keeps_each_callers_order():
    seen = []

    def encode(texts: list[str]) -> np.ndarray:
        seen.append(list(texts))
        return np.array([[len(text), ord(text[0])] for text in texts], dtype=np.float32)

    batcher = QueryBatcher(encode, max_batch=8, wait_s=10)
    batcher.encode(['f'])  # a query now: those that come within wait_s wait for each other
    found = concurrently(batcher.encode, [['ab', 'c'], ['c'], ['ddd', 'ab'], ['e']])
    assert batcher.passes == 2 and sorted(seen[1]) == ['ab', 'c', 'ddd', 'e']
    assert [f.tolist() for f in found] == [[[2, 97], [1, 99]], [[1, 99]], [[3, 100], [2, 97]], [[1, 101]]]


def test_a_pass_takes_at_most_max_batch_texts_and_a_larger_request_runs_alone():
    sizes = []

    def encode(texts: list[str]) -> np.ndarray:
        sizes.append(len(texts))
        return np.zeros((len(texts), 2), np.float32)

    batcher = QueryBatcher(encode, max_batch=3, wait_s=0)
    assert batcher.encode([str(n) for n in range(5)]).shape == (5, 2) and sizes == [5]
    concurrently(batcher.encode, [[str(n)] for n in range(7)])
    assert sum(sizes[1:]) == 7 and max(sizes[1:]) <= 3


def test_every_query_of_a_failed_pass_gets_its_error_and_the_next_pass_runs():
    calls = []

    def encode(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        if len(calls) == 1:
            raise ModelError('the text model could not load')
        return np.ones((len(texts), 2), np.float32)

    batcher = QueryBatcher(encode, max_batch=4, wait_s=10)
    batcher.encode_batch = lambda texts: np.ones((len(texts), 2), np.float32)
    batcher.encode(['first'])
    batcher.encode_batch = encode
    outcomes = concurrently(lambda text: _outcome(batcher.encode, [text]), ['a', 'b', 'c', 'd'])
    assert outcomes == ['ModelError: the text model could not load'] * 4
    assert batcher.encode(['e']).tolist() == [[1.0, 1.0]]


def test_a_query_after_a_quiet_spell_does_not_wait_for_company():
    batcher = QueryBatcher(lambda texts: np.zeros((len(texts), 2), np.float32), max_batch=8, wait_s=1.0)
    batcher.encode(['the first'])
    time.sleep(1.1)
    started = time.monotonic()
    batcher.encode(['alone'])
    assert time.monotonic() - started < 0.5  # the last query came over wait_s ago: no rush, no wait


def test_batch_wait_ms_is_checked():
    with pytest.raises(ValueError, match='batch_wait_ms must be a number of milliseconds from 0 to 1000'):
        TextEncoder(batch_wait_ms=-1)


def _outcome(function, *args) -> str:
    try:
        function(*args)
    except ModelError as e:
        return f'{type(e).__name__}: {e}'
    return 'no error'
