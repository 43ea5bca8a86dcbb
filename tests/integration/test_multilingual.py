"""Queries in any language: the multilingual tower (a random model of the real architecture, loaded
through the production loader), `auto` selection by script, the query cache, the image space each
query records, and the one-line errors. No network: Hugging Face is held offline."""
import json
import re
import statistics
import time
from pathlib import Path

import numpy as np
import pytest

from executors.models.clip_encoding import encode_texts
from executors.models.clip_model import WEIGHTS_DIR, image_space_id, load_clip
from executors.documents import DocList, QueryDoc
from executors.errors import ConfigError, ModelError
from executors.models.multilingual import encode_sentences, load_multilingual
from executors.models.query_language import is_plain_english, query_language
from executors.text_encoder import TextEncoder
from flow import Flow, main
from tests.factories import write_random_clip_checkpoint
from tests.multilingual_factory import write_random_multilingual_model

ROOT = Path(__file__).resolve().parents[2]
ENGLISH = ['a man rides a bike along the beach', 'dog', 'Fireworks -- over the city, at night!', 'it’s a “red” car…']
OTHERS = {'zh': '海滩上的狗', 'ja': '海辺で犬が走る', 'ar': 'كلب على الشاطئ', '': '🐶🏖️'}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Any Hugging Face request fails at once instead of reaching for the network."""
    import huggingface_hub.constants

    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)


@pytest.fixture(scope='session')
def tiny_multilingual(tmp_path_factory) -> Path:
    """A random multilingual DistilBERT -> mean pooling -> Dense(48 -> 32, no bias): the tiny CLIP's width."""
    return write_random_multilingual_model(tmp_path_factory.mktemp('weights') / 'tiny-multilingual', 'tiny', out=32)


@pytest.fixture
def encoder(tiny_checkpoint, tiny_multilingual):
    def make(text_model='auto', **kwargs):
        settings = dict(model=str(tiny_checkpoint), device='cpu', multilingual_model=str(tiny_multilingual),
                        aligned_to=str(tiny_checkpoint))
        return TextEncoder(text_model=text_model, **{**settings, **kwargs})
    return make


def search(encoder: TextEncoder, *texts: str) -> DocList[QueryDoc]:
    return encoder.handle('/search', DocList[QueryDoc]([QueryDoc(text=t) for t in texts]), {})


def test_the_loader_reads_the_real_architecture_from_a_sentence_transformers_folder(tiny_multilingual):
    model = load_multilingual(str(tiny_multilingual), 'cpu')
    transformer, pooling, dense = list(model)
    assert type(transformer.auto_model).__name__ == 'DistilBertModel'
    assert pooling.get_config_dict()['pooling_mode'] == 'mean'
    assert (dense.linear.in_features, dense.linear.out_features, dense.linear.bias) == (48, 32, None)
    assert load_multilingual(str(tiny_multilingual), 'cpu') is model  # once per process


def test_embeddings_are_normalised_float32_and_batch_independent(tiny_multilingual):
    model = load_multilingual(str(tiny_multilingual), 'cpu')
    texts = ENGLISH + list(OTHERS.values())
    together = encode_sentences(model, texts)
    assert together.dtype == np.float32 and together.shape == (len(texts), 32)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1, rtol=1e-5)
    apart = np.concatenate([encode_sentences(model, [text]) for text in texts])
    np.testing.assert_allclose(together, apart, atol=1e-5)  # padding does not change a query's embedding
    assert len({row.round(5).tobytes() for row in together}) == len(texts)


def test_chinese_is_read_character_by_character_and_emoji_as_unknown(tiny_multilingual):
    model = load_multilingual(str(tiny_multilingual), 'cpu')
    tokenizer = model.tokenizer
    assert tokenizer.tokenize('海滩上的狗') == list('海滩上的狗')
    assert tokenizer.tokenize('🐶') == ['[UNK]']


def test_int8_stays_close_to_fp32(tiny_multilingual):
    fp32 = encode_sentences(load_multilingual(str(tiny_multilingual), 'cpu'), ENGLISH + list(OTHERS.values()))
    int8 = encode_sentences(load_multilingual(str(tiny_multilingual), 'cpu', quantize='int8'),
                            ENGLISH + list(OTHERS.values()))
    assert (fp32 * int8).sum(axis=1).min() > 0.99


@pytest.mark.parametrize('text', ENGLISH + ['', '12:30 — 45 °C, 3 × 2 £5 €5'])
def test_ascii_and_typographic_marks_are_plain_english(text):
    assert is_plain_english(text)


@pytest.mark.parametrize('text', [*OTHERS.values(), 'café', 'niño en la playa', 'Straße', 'собака', 'a dog 🐶'])
def test_other_characters_are_not_plain_english(text):
    assert not is_plain_english(text)


@pytest.mark.parametrize('text, language', [
    ('a dog on the beach', 'en'), ('海滩上的狗', 'zh'), ('海辺で犬が走る', 'ja'), ('東京', 'zh'), ('바닷가의 개', 'ko'),
    ('كلب على الشاطئ', 'ar'), ('собака на пляже', 'ru'), ('собака на пляжі їде', 'uk'), ('σκύλος', 'el'),
    ('niño en la playa', 'es'), ('Straße', 'de'), ('🐶🏖️', ''), ('café au lait', ''), ('123 !?', ''),
])
def test_a_best_effort_language_tag(text, language):
    assert query_language(text) == language


def test_auto_sends_english_to_clip_and_the_rest_to_the_multilingual_tower(encoder, tiny_checkpoint, tiny_multilingual):
    queries = search(encoder('auto'), *ENGLISH, *OTHERS.values())
    clip = encode_texts(load_clip(str(tiny_checkpoint), 'cpu'), [' '.join(t.split()) for t in ENGLISH])
    multilingual = encode_sentences(load_multilingual(str(tiny_multilingual), 'cpu'), list(OTHERS.values()))
    np.testing.assert_allclose(np.stack([q.embedding for q in queries]), np.concatenate([clip, multilingual]), atol=1e-5)
    assert [q.language for q in queries] == ['en'] * len(ENGLISH) + list(OTHERS)


@pytest.mark.parametrize('text_model', ['clip', 'multilingual'])
def test_clip_and_multilingual_embed_every_query_with_their_tower(encoder, tiny_checkpoint, tiny_multilingual, text_model):
    texts = [ENGLISH[0], OTHERS['zh']]
    model = load_clip(str(tiny_checkpoint), 'cpu') if text_model == 'clip' else load_multilingual(str(tiny_multilingual), 'cpu')
    expected = (encode_texts if text_model == 'clip' else encode_sentences)(model, texts)
    np.testing.assert_allclose(np.stack([q.embedding for q in search(encoder(text_model), *texts)]), expected, atol=1e-5)


def test_english_only_use_never_loads_the_multilingual_model(tiny_checkpoint, tmp_path):
    missing = tmp_path / 'no-such-model'
    encoder = TextEncoder(model=str(tiny_checkpoint), device='cpu', text_model='auto', multilingual_model=str(missing))
    assert all(q.embedding.shape == (32,) for q in search(encoder, *ENGLISH))
    assert not encoder.towers['multilingual'].loaded
    with pytest.raises(ModelError, match='no-such-model'):
        search(encoder, OTHERS['zh'])


def test_multilingual_use_never_loads_clip_for_text(tiny_multilingual, tmp_path):
    encoder = TextEncoder(model=str(tmp_path / 'missing.pt'), device='cpu', text_model='multilingual',
                          multilingual_model=str(tiny_multilingual), aligned_to='ViT-B/32')
    assert search(encoder, ENGLISH[0])[0].embedding.shape == (32,)
    assert not encoder.towers['clip'].loaded


def test_each_query_records_the_image_space_of_its_tower(encoder, tiny_checkpoint, tmp_path):
    english, chinese = search(encoder('auto'), ENGLISH[0], OTHERS['zh'])
    assert english.space == chinese.space == image_space_id(str(tiny_checkpoint))
    other = write_random_clip_checkpoint(tmp_path / 'other.pt', seed=1)
    aligned_elsewhere = encoder('multilingual', aligned_to=str(other))
    assert search(aligned_elsewhere, OTHERS['zh'])[0].space == image_space_id(str(other)) != english.space
    assert search(encoder('clip', aligned_to='ViT-B/32'), OTHERS['zh'])[0].space == english.space


def test_a_repeated_query_comes_from_the_cache(encoder):
    text_encoder = encoder('auto', cache_size=2)
    calls = {'clip': 0, 'multilingual': 0}
    for name, tower in text_encoder.towers.items():
        def counted(texts, encode=tower.encode, name=name):
            calls[name] += len(texts)
            return encode(texts)
        tower.encode = counted
    first = search(text_encoder, ENGLISH[0], OTHERS['zh'], ENGLISH[0])
    assert calls == {'clip': 1, 'multilingual': 1}  # the same text twice in one request is encoded once
    again = search(text_encoder, ENGLISH[0] + '  ', OTHERS['zh'])  # whitespace does not change a query
    assert calls == {'clip': 1, 'multilingual': 1}
    np.testing.assert_array_equal(first[0].embedding, again[0].embedding)
    with pytest.raises(ValueError):
        again[0].embedding[0] = 1.0  # the cached embedding cannot be changed through a query
    search(text_encoder, 'cat', 'dog')  # least recently used out: the cache holds 2
    search(text_encoder, ENGLISH[0])
    assert calls['clip'] == 4 and len(text_encoder.cache) == 2


def test_a_repeated_query_costs_no_model_time(encoder):
    text_encoder = encoder('auto')
    search(text_encoder, ENGLISH[0])
    times = []
    for _ in range(50):
        started = time.perf_counter()
        search(text_encoder, ENGLISH[0])
        times.append(time.perf_counter() - started)
    assert statistics.median(times) < 0.002  # the median: other work on a shared machine hits single runs


def test_no_cache_encodes_every_time(encoder):
    text_encoder = encoder('clip', cache_size=0)
    search(text_encoder, 'dog')
    assert len(text_encoder.cache) == 0


def test_a_missing_model_is_one_line_naming_the_folder_to_fill(tmp_path):
    started = time.perf_counter()
    with pytest.raises(ModelError) as error:
        load_multilingual('clip-ViT-B-32-multilingual-v1', 'cpu', download_root=tmp_path)
    message = str(error.value)
    assert '\n' not in message and time.perf_counter() - started < 10
    assert f'into {tmp_path / "clip-ViT-B-32-multilingual-v1"}/' in message
    assert 'https://huggingface.co/sentence-transformers/clip-ViT-B-32-multilingual-v1' in message
    assert list(tmp_path.iterdir()) == []  # nothing half-downloaded is left


def test_the_text_encoder_looks_for_a_named_model_in_weights(tiny_checkpoint):
    encoder = TextEncoder(model=str(tiny_checkpoint), device='cpu', text_model='multilingual',
                          multilingual_model='no-such-multilingual-model-v0')
    with pytest.raises(ModelError, match=f'into {WEIGHTS_DIR}/no-such-multilingual-model-v0/'):
        search(encoder, OTHERS['zh'])


@pytest.mark.parametrize('folder, message', [('~/nowhere/model', 'is not a folder'),
                                             ('.', 'is not a sentence-transformers model folder')])
def test_a_bad_folder_is_one_line(folder, message):
    with pytest.raises(ModelError, match=message):
        load_multilingual(folder, 'cpu')


def test_flow_yml_rejects_an_unknown_text_model(tiny_checkpoint, tmp_path):
    path = tmp_path / 'flow.yml'
    path.write_text('executors:\n  - uses: TextEncoder\n    with:\n      text_model: chinese\n')
    with pytest.raises(ConfigError, match="flow.yml:2: TextEncoder: text_model must be one of clip, multilingual, "
                                          "auto, not 'chinese'"):
        Flow(path, model=str(tiny_checkpoint))


# ----------------------------------------------------------------------------- end to end through the CLI


def multilingual_flow(tmp_path: Path, tiny_multilingual: Path, aligned_to: Path) -> Path:
    """The repository's flow.yml with the TextEncoder pointed at the tiny multilingual model."""
    text = (ROOT / 'flow.yml').read_text(encoding='utf-8')
    text, models = re.subn(r'(?m)^(\s+multilingual_model:) \S+', rf'\1 {tiny_multilingual}', text)
    text, spaces = re.subn(r'(?m)^(\s+aligned_to:) \S+', rf'\1 {aligned_to}', text)
    assert models == spaces == 1
    path = tmp_path / 'flow.yml'
    path.write_text(text, encoding='utf-8')
    return path


def cli(capsys, *args) -> tuple[int, str, str]:
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_queries_in_any_language_search_an_index_made_by_clip(sample_videos, tiny_checkpoint, tiny_multilingual,
                                                              workspace, tmp_path, capsys):
    flow = multilingual_flow(tmp_path, tiny_multilingual, tiny_checkpoint)
    common = ['--flow', str(flow), '--workspace', str(workspace), '--model', str(tiny_checkpoint)]
    assert cli(capsys, 'index', *map(str, sample_videos), *common)[0] == 0
    stored = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in workspace.rglob('*') if p.is_file()}
    assert {'embeddings.f16', 'ivf.faiss'} <= {p.name for p in stored}
    for text_model in ('multilingual', 'auto'):
        for query in [*OTHERS.values(), '一只狗 🐶']:
            status, out, err = cli(capsys, 'search', query, '--json', '--text-model', text_model, '--in', 'visual', *common)
            assert status == 0, err
            assert {Path(r['video']).name for r in json.loads(out)} <= {v.name for v in sample_videos}
            assert json.loads(out)
    changed = [p for p in workspace.rglob('*') if p.is_file() and p in stored and p.suffix in ('.f16', '.faiss')
               and (p.stat().st_mtime_ns, p.read_bytes()) != stored[p]]
    assert changed == []  # the index is reused as it is: nothing re-encoded or rewritten


def test_a_text_model_of_another_image_space_is_refused_in_one_line(sample_videos, tiny_checkpoint, tiny_multilingual,
                                                                    workspace, tmp_path, capsys):
    other = write_random_clip_checkpoint(tmp_path / 'other.pt', seed=1)
    flow = multilingual_flow(tmp_path, tiny_multilingual, other)
    common = ['--flow', str(flow), '--workspace', str(workspace), '--model', str(tiny_checkpoint)]
    assert cli(capsys, 'index', str(sample_videos[0]), *common)[0] == 0
    status, out, err = cli(capsys, 'search', OTHERS['zh'], '--text-model', 'multilingual', *common)
    assert status == 1 and out == ''
    assert err.count('\n') == 1 and err.startswith('error: ') and 'holds vectors of' in err
    assert cli(capsys, 'search', ENGLISH[0], '--text-model', 'auto', *common)[0] == 0  # English stays with CLIP


def test_without_the_multilingual_model_a_chinese_query_still_finds_what_is_said(sample_videos, tiny_checkpoint,
                                                                                 workspace, tmp_path, capsys,
                                                                                 monkeypatch, caplog):
    """Issue 24.9: a Chinese query failed (exit 1) after ~30 s of download retries, on every query."""
    from executors import notices
    from executors.models import multilingual

    video = tmp_path / 'videos' / 'beach.mp4'
    video.parent.mkdir()
    video.write_bytes(sample_videos[0].read_bytes())
    (tmp_path / 'videos' / 'beach.zh.vtt').write_text('WEBVTT\n\n00:00:01.000 --> 00:00:02.500\n我们去海边吧\n',
                                                      encoding='utf-8')
    flow = multilingual_flow(tmp_path, Path('no-such-multilingual-model-v9'), tiny_checkpoint)
    common = ['--flow', str(flow), '--workspace', str(workspace), '--model', str(tiny_checkpoint)]
    attempts = []
    real_download = multilingual._download
    monkeypatch.setattr(multilingual, '_download', lambda *a: attempts.append(a) or real_download(*a))
    monkeypatch.setattr(multilingual, '_missing', {})
    monkeypatch.setattr(notices, '_given', set())  # an earlier test may have given the same notice
    assert cli(capsys, 'index', str(video), '--asr', 'off', *common)[0] == 0  # its Chinese cue tries the model once
    for within in ('all', 'speech', 'all'):
        started = time.perf_counter()
        status, out, err = cli(capsys, 'search', '海边', '--json', '--text-model', 'auto', '--in', within, *common)
        assert status == 0 and time.perf_counter() - started < 10, err
        [hit] = json.loads(out)
        assert (hit['text'], hit['source'], hit['start']) == ('我们去海边吧', 'speech', 1.0)
    notices = [r.getMessage() for r in caplog.records if 'visual search for queries in zh' in r.getMessage()]
    assert len(notices) == 1 and f'{WEIGHTS_DIR / "no-such-multilingual-model-v9"}/' in notices[0], notices
    assert len(attempts) == 1  # the failure is remembered: one attempt for the process's life
    status, _, err = cli(capsys, 'search', '海边', '--text-model', 'auto', '--in', 'visual', *common)
    assert status == 1 and err.startswith('error: ') and 'no-such-multilingual-model-v9' in err
