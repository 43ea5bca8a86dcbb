"""Search over what is said by meaning (issue 24, item 7): the TextEncoder embeds each cue with the tower
that embeds queries, the storage keeps the vectors with the cues, the Indexer ranks cues by cosine."""
import numpy as np
import pytest

from executors.documents import CueDoc, DocList, QueryDoc, Status, VideoDoc
from executors.indexer import Indexer
from executors.text_encoder import TextEncoder
from tests.integration.test_indexer import make_video, unit

SAID = ['she painted the door green', 'the train leaves at noon', 'they sold the old boat']


@pytest.fixture(scope='module')
def encoder(tiny_checkpoint) -> TextEncoder:
    return TextEncoder(model=str(tiny_checkpoint), device='cpu', text_model='clip', runtime='torch')


def embedded_video(workspace, encoder: TextEncoder, name: str, said: list[str]) -> VideoDoc:
    dim = encoder.towers['clip'].encode(['x']).shape[1]
    doc = make_video(workspace, name, unit(np.random.default_rng(0).normal(size=(6, dim))))
    doc.cues = DocList[CueDoc]([CueDoc(start=2.0 * i, end=2.0 * i + 1.5, text=t, source='asr') for i, t in enumerate(said)])
    return encoder.handle('/index', DocList[VideoDoc]([doc]), {})[0]


def query(encoder: TextEncoder, text: str, like: str) -> QueryDoc:
    """A query for `text` whose embedding is the one the tower gives `like` (a tower that knows they mean the same)."""
    embedded = encoder.handle('/search', DocList[QueryDoc]([QueryDoc(text=like)]), {})[0]
    return QueryDoc(text=text, embedding=embedded.embedding, space='')


def test_the_text_encoder_embeds_each_cue_as_it_embeds_that_text_as_a_query(workspace, encoder):
    doc = embedded_video(workspace, encoder, 'talk.mp4', SAID)
    asked = encoder.handle('/search', DocList[QueryDoc]([QueryDoc(text=t) for t in SAID]), {})
    for cue, q in zip(doc.cues, asked):
        np.testing.assert_allclose(cue.embedding, q.embedding, atol=1e-5)
    failed = make_video(workspace, 'failed.mp4', unit(np.ones((1, 4))))
    failed.status, failed.cues = Status.FAILED, DocList[CueDoc]([CueDoc(text='not wanted')])
    assert encoder.handle('/index', DocList[VideoDoc]([failed]), {})[0].cues[0].embedding is None


@pytest.mark.parametrize('backend', ['hnswlib', 'milvus'])
def test_a_paraphrase_finds_its_cue_by_meaning_and_words_still_rank_first(workspace, encoder, backend):
    indexer = Indexer(workspace=str(workspace), backend=backend)
    assert indexer.index(DocList[VideoDoc]([embedded_video(workspace, encoder, 'talk.mp4', SAID)]))[0].status == \
        Status.INDEXED
    paraphrase = query(encoder, 'someone coloured the entrance', like='she painted the door green')
    [found] = indexer.search(DocList[QueryDoc]([paraphrase]), {'within': 'speech', 'top': 1})[0].matches
    assert (found.start, found.end, found.text, found.source) == (0.0, 1.5, 'she painted the door green', 'speech')
    assert 0 < found.score < 1  # below what a cue holding every word scores
    by_words = query(encoder, 'the old boat', like='she painted the door green')
    matches = indexer.search(DocList[QueryDoc]([by_words]), {'within': 'speech'})[0].matches
    assert [m.text for m in matches][:2] == ['they sold the old boat', 'she painted the door green']
    indexer.close()


def test_words_only_when_meaning_is_off(workspace, encoder):
    indexer = Indexer(workspace=str(workspace), meaning_floor=1.0)
    indexer.index(DocList[VideoDoc]([embedded_video(workspace, encoder, 'talk.mp4', SAID)]))
    paraphrase = query(encoder, 'someone coloured the entrance', like='she painted the door green')
    assert len(indexer.search(DocList[QueryDoc]([paraphrase]), {'within': 'speech'})[0].matches) == 0
    indexer.close()
    with pytest.raises(ValueError, match='meaning_floor'):
        Indexer(workspace=str(workspace), meaning_floor=1.5)
