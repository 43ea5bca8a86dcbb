"""ImageEncoder and TextEncoder: CLIP's preprocessing, batching, the exact fast text path, queries."""
import contextlib
import resource

import numpy as np
import pytest
import torch

from executors.models.clip_encoding import encode_images, encode_query_image, preprocess_images
from executors.models.clip_text import encode_tokens, tokenize
from executors.models.clip_model import load_clip
from executors.documents import DocList, FrameDoc, QueryDoc, VideoDoc
from executors.errors import ConfigError, ModelError, QueryError
from executors.image_encoder import ImageEncoder
from executors.text_encoder import TextEncoder
from flow import Flow
from tests.factories import CLIP_PRESETS

QUERIES = ['a man rides a bike along the beach', 'dog', '!!!', 'Ünïcödé café 東京 🚲', 'a ' * 100 + 'cat',
           'fireworks over a city at night, seen from a boat on the river while people cheer']


@pytest.fixture
def model(tiny_checkpoint):
    return load_clip(str(tiny_checkpoint), 'cpu')


def picture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth RGB picture with some noise, like a video frame."""
    rows, cols = np.mgrid[:height, :width]
    noise = np.random.default_rng(seed).integers(-20, 20, (height, width, 3))
    base = np.stack([cols * 255 // width, rows * 255 // height, (rows + cols + 40 * seed) % 64 * 4], axis=-1)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def video(frames: int, status: str = '') -> VideoDoc:
    """A VideoDoc as the VideoLoader leaves it: frames with short side 224."""
    return VideoDoc(uri=f'/videos/{frames}.mp4', status=status,
                    frames=DocList[FrameDoc]([FrameDoc(timestamp=i, tensor=picture(224, 298, i)) for i in range(frames)]))


@pytest.mark.parametrize('height, width', [(240, 320), (500, 300), (100, 150), (224, 298)])
def test_preprocessing_matches_clips_own_transform(model, height, width):
    from PIL import Image
    from clip.clip import _transform

    image = picture(height, width)
    expected = _transform(224)(Image.fromarray(image))[None]
    actual = preprocess_images(torch.from_numpy(image)[None], 224)
    assert actual.shape == (1, 3, 224, 224)
    assert float((actual - expected).abs().mean()) < 0.01  # under one grey level (0.015) on average
    with torch.inference_mode():
        reference = model.encode_image(expected)[0]
    assert float(torch.nn.functional.cosine_similarity(reference, torch.from_numpy(encode_images(model, [image])[0]),
                                                       dim=0)) > 0.9999


def test_index_embeds_every_frame_in_batches_and_drops_the_pixels(tiny_checkpoint):
    encoder = ImageEncoder(model=str(tiny_checkpoint), device='cpu', batch_size=2)
    calls = []
    docs = encoder.handle('/index', DocList[VideoDoc]([video(5)]), {'progress': lambda *args: calls.append(args)})
    frames = docs[0].frames
    assert [(stage, done, total) for _, stage, done, total in calls] == [('encode', 2, 5), ('encode', 4, 5), ('encode', 5, 5)]
    assert all(frame.tensor is None for frame in frames)
    embeddings = np.stack([frame.embedding for frame in frames])
    assert embeddings.dtype == np.float32 and embeddings.shape == (5, 32)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1, rtol=1e-5)
    assert len({row.tobytes() for row in embeddings}) == 5


def test_videos_already_indexed_or_failed_are_left_alone(tiny_checkpoint):
    encoder = ImageEncoder(model=str(tiny_checkpoint), device='cpu')
    docs = encoder.handle('/index', DocList[VideoDoc]([video(2, 'already indexed'), video(3, 'failed')]), {})
    assert all(frame.embedding is None and frame.tensor is not None for doc in docs for frame in doc.frames)


def test_batch_of_one_equals_batch_of_many(tiny_checkpoint):
    one, many = video(5), video(5)
    ImageEncoder(model=str(tiny_checkpoint), device='cpu', batch_size=1).handle('/index', DocList[VideoDoc]([one]), {})
    ImageEncoder(model=str(tiny_checkpoint), device='cpu', batch_size=4).handle('/index', DocList[VideoDoc]([many]), {})
    np.testing.assert_allclose(np.stack([f.embedding for f in one.frames]), np.stack([f.embedding for f in many.frames]),
                               atol=1e-5)

    texts = [DocList[QueryDoc]([QueryDoc(text=t) for t in QUERIES]) for _ in range(2)]
    TextEncoder(model=str(tiny_checkpoint), device='cpu', batch_size=1, text_model='clip').handle('/search', texts[0], {})
    TextEncoder(model=str(tiny_checkpoint), device='cpu', batch_size=8, text_model='clip').handle('/search', texts[1], {})
    np.testing.assert_allclose(np.stack([q.embedding for q in texts[0]]), np.stack([q.embedding for q in texts[1]]),
                               atol=1e-5)


def test_frames_of_mixed_sizes_share_a_batch(model):
    images = [picture(224, 298), picture(300, 224, 1), picture(480, 640, 2)]
    together = encode_images(model, images)
    apart = np.concatenate([encode_images(model, [image]) for image in images])
    np.testing.assert_allclose(together, apart, atol=1e-5)


def test_a_frame_used_as_query_image_gets_that_frames_embedding(tiny_checkpoint):
    frame = picture(224, 298, 3)
    query = QueryDoc(image=frame)
    ImageEncoder(model=str(tiny_checkpoint), device='cpu').handle('/search', DocList[QueryDoc]([query]), {})
    np.testing.assert_allclose(query.embedding, encode_images(load_clip(str(tiny_checkpoint), 'cpu'), [frame])[0],
                               atol=1e-6)


@contextlib.contextmanager
def address_space_limit(extra_bytes: int):
    """Fail any allocation that takes this process more than `extra_bytes` past its current size."""
    with open('/proc/self/status') as status:
        used = next(int(line.split()[1]) * 1024 for line in status if line.startswith('VmSize:'))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (used + extra_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def test_a_huge_query_image_is_downscaled_before_it_costs_memory(model):
    colour = np.array([200, 40, 90], dtype=np.uint8)
    huge = np.broadcast_to(colour, (20000, 20000, 3))  # 1.2 GB as an array, 4.8 GB as floats
    with address_space_limit(512 << 20):
        embedding = encode_query_image(model, huge)
    np.testing.assert_allclose(embedding, encode_query_image(model, np.broadcast_to(colour, (224, 224, 3))), atol=1e-4)


def test_a_long_thin_query_image_is_embedded(model):
    assert encode_query_image(model, picture(3, 5000)).shape == (32,)


@pytest.mark.parametrize('image, message', [
    (np.zeros((0, 0, 3), np.uint8), r'the query image is empty \(0x0 pixels\)'),
    (np.zeros((0, 10, 3), np.uint8), r'the query image is empty \(10x0 pixels\)'),
    (np.zeros((10, 10), np.uint8), r'must be RGB \(height x width x 3\), not an array of shape \(10, 10\)'),
    (np.zeros((10, 10, 3), np.float32), 'must hold uint8 values 0-255, not float32'),
])
def test_an_unusable_query_image_is_a_query_error(tiny_checkpoint, image, message):
    encoder = ImageEncoder(model=str(tiny_checkpoint), device='cpu')
    with pytest.raises(QueryError, match=message):
        encoder.handle('/search', DocList[QueryDoc]([QueryDoc(image=image)]), {})


def test_fast_text_path_equals_stock_encode_text_on_the_tiny_model(model):
    tokens = tokenize(QUERIES + [''])
    with torch.inference_mode():
        assert float((encode_tokens(model, tokens) - model.encode_text(tokens)).abs().max()) < 1e-5
        for row in tokens:  # alone, each query runs over its own length only
            assert float((encode_tokens(model, row[None]) - model.encode_text(row[None])).abs().max()) < 1e-5


def random_full_size_text_model() -> torch.nn.Module:
    """A ViT-B/32 CLIP whose text side is randomly initialised as CLIP does; the unused vision side is left empty."""
    from clip.model import CLIP

    torch.manual_seed(0)
    with torch.device('meta'):
        model = CLIP(*CLIP_PRESETS['ViT-B/32'])
    model.to_empty(device='cpu')
    for module in [*model.transformer.modules(), model.ln_final]:
        if isinstance(module, torch.nn.MultiheadAttention):
            module._reset_parameters()
        elif isinstance(module, (torch.nn.Linear, torch.nn.LayerNorm)):
            module.reset_parameters()
    for block in model.transformer.resblocks:
        block.attn_mask = model.build_attention_mask()
    model.initialize_parameters()
    return model.eval()


def test_fast_text_path_equals_stock_encode_text_on_a_full_size_model():
    full = random_full_size_text_model()
    tokens = tokenize(QUERIES[:4])
    with torch.inference_mode():
        stock = full.encode_text(tokens)
        assert float((encode_tokens(full, tokens) - stock).abs().max()) < 1e-5
        assert float((encode_tokens(full, tokens[1:2]) - stock[1:2]).abs().max()) < 1e-5


def test_text_beyond_77_tokens_is_cut_off_not_an_error(tiny_checkpoint):
    queries = DocList[QueryDoc]([QueryDoc(text='a ' * 100 + end) for end in ('dog', 'cat')] + [QueryDoc(text='a dog')])
    TextEncoder(model=str(tiny_checkpoint), device='cpu').handle('/search', queries, {})
    np.testing.assert_array_equal(queries[0].embedding, queries[1].embedding)
    assert not np.allclose(queries[0].embedding, queries[2].embedding)


@pytest.mark.parametrize('text', ['', '   ', '\n\t '])
def test_an_empty_text_query_is_a_query_error(tiny_checkpoint, text):
    encoder = TextEncoder(model=str(tiny_checkpoint), device='cpu')
    with pytest.raises(QueryError, match='empty query'):
        encoder.handle('/search', DocList[QueryDoc]([QueryDoc(text='a dog'), QueryDoc(text=text)]), {})


def test_text_encoder_leaves_image_queries_to_the_image_encoder(tiny_checkpoint):
    embedded = np.ones(32, np.float32) / np.sqrt(32)
    queries = DocList[QueryDoc]([QueryDoc(image=picture(10, 10)), QueryDoc(text='a dog', embedding=embedded)])
    TextEncoder(model=str(tiny_checkpoint), device='cpu').handle('/search', queries, {})
    assert queries[0].embedding is None
    np.testing.assert_array_equal(queries[1].embedding, embedded)


def test_both_encoders_share_one_model(tiny_checkpoint):
    image = ImageEncoder(model=str(tiny_checkpoint), device='cpu', batch_size=8)
    assert image.model is TextEncoder(model=str(tiny_checkpoint), device='cpu').model


def test_weights_are_loaded_on_first_use_only(tmp_path):
    missing = tmp_path / 'weights.pt'
    encoder = TextEncoder(model=str(missing), device='cpu')  # /list and /delete never need the weights
    with pytest.raises(ModelError, match='weights.pt'):
        encoder.handle('/search', DocList[QueryDoc]([QueryDoc(text='a dog')]), {})


def test_flow_yml_configures_the_encoders(tiny_checkpoint, tmp_path):
    path = tmp_path / 'flow.yml'
    path.write_text('with:\n  device: cpu\nexecutors:\n  - uses: ImageEncoder\n    with:\n      batch_size: 2\n'
                    '      quantize: int8\n  - uses: TextEncoder\n')
    with Flow(path, model=str(tiny_checkpoint)) as flow:
        image_encoder = flow.executors[0]
        assert (image_encoder.batch_size, image_encoder.quantize) == (2, 'int8')
        queries = flow.post('/search', DocList[QueryDoc]([QueryDoc(text='a dog'), QueryDoc(image=picture(50, 80))]))
    assert [q.embedding.shape for q in queries] == [(32,), (32,)]

    path.write_text('executors:\n  - uses: ImageEncoder\n    with:\n      batch_size: 0\n')
    with pytest.raises(ConfigError, match=r'flow.yml:2: ImageEncoder: batch_size must be a whole number >= 1, not 0'):
        Flow(path, model=str(tiny_checkpoint))


def test_encode_endpoint_embeds_frames_and_texts_without_indexing(tiny_checkpoint, tmp_path):
    path = tmp_path / 'flow.yml'
    path.write_text('with:\n  device: cpu\nexecutors:\n  - uses: ImageEncoder\n  - uses: TextEncoder\n')
    with Flow(path, model=str(tiny_checkpoint)) as flow:
        videos = flow.post('/encode', DocList[VideoDoc]([video(3)]))
        captions = flow.post('/encode', DocList[QueryDoc]([QueryDoc(text='a dog'), QueryDoc(text='a cat')]))
    assert [frame.embedding.shape for frame in videos[0].frames] == [(32,)] * 3
    assert [query.embedding.shape for query in captions] == [(32,)] * 2


def test_the_lean_text_path_is_taken_for_a_stock_tower_and_equals_encode_text(model):
    from executors.models.clip_text import has_lean_text_path, lean_text_transformer

    assert has_lean_text_path(model)
    tokens = tokenize(QUERIES)
    with torch.inference_mode():
        assert float((lean_text_transformer(model, tokens) - model.encode_text(tokens)).abs().max()) < 1e-5


def test_a_tuned_text_tower_keeps_its_own_encode_text(tiny_checkpoint):
    from executors.models.clip_text import has_lean_text_path
    from executors.models.clip_model import load_checkpoint
    from executors.models.tuned_model import install

    tuned = install(load_checkpoint(str(tiny_checkpoint), 'cpu'), 'prompt', {'towers': ['text']}).eval()
    with torch.no_grad():
        for block in tuned.transformer.resblocks:
            block.attn.gate.fill_(1.0)  # the prompts now change every text embedding
    tokens = tokenize(QUERIES[:3])
    assert not has_lean_text_path(tuned)
    with torch.inference_mode():
        assert float((encode_tokens(tuned, tokens) - tuned.encode_text(tokens)).abs().max()) < 1e-5


def test_int8_text_on_the_lean_path_stays_close_to_fp32(tiny_checkpoint):
    fp32 = load_clip(str(tiny_checkpoint), 'cpu')
    int8 = load_clip(str(tiny_checkpoint), 'cpu', quantize='int8')
    from executors.models.clip_encoding import encode_texts

    cosine = np.sum(encode_texts(fp32, QUERIES) * encode_texts(int8, QUERIES), axis=1)
    assert cosine.min() > 0.99


# ----------------------------------------------------------------------------- near-duplicate keyframes


def still_video(pictures: list[np.ndarray]) -> VideoDoc:
    return VideoDoc(uri='/videos/still.mp4', frames=DocList[FrameDoc]([FrameDoc(timestamp=i, tensor=p)
                                                                      for i, p in enumerate(pictures)]))


def counting_encoder(monkeypatch, checkpoint, **kwargs) -> tuple[ImageEncoder, list[int]]:
    """An ImageEncoder that records how many images each forward pass gets."""
    import executors.image_encoder as module

    sizes, encode = [], module.encode_images
    monkeypatch.setattr(module, 'encode_images',
                        lambda model, images, *args: sizes.append(len(images)) or encode(model, images, *args))
    return ImageEncoder(model=str(checkpoint), device='cpu', **kwargs), sizes


def test_identical_keyframes_are_encoded_once_and_share_the_embedding(tiny_checkpoint, monkeypatch):
    # fp32 whatever the CPU: precision auto takes bf16 on a CPU with AVX512-BF16, whose rows differ with the batch's shape
    encoder, sizes = counting_encoder(monkeypatch, tiny_checkpoint, batch_size=2, precision='fp32')
    slide, other = picture(224, 298, 1), picture(224, 298, 2)
    calls = []
    doc = still_video([slide, slide.copy(), slide.copy(), other, other.copy()])
    encoder.handle('/index', DocList[VideoDoc]([doc]), {'progress': lambda *args: calls.append(args[2:])})
    assert sizes == [2]  # one forward pass over the two distinct pictures
    rows = [frame.embedding for frame in doc.frames]
    assert all(np.array_equal(rows[0], row) for row in rows[1:3]) and np.array_equal(rows[3], rows[4])
    assert not np.allclose(rows[0], rows[3])
    assert all(frame.tensor is None for frame in doc.frames)
    assert calls == [(5, 5)]
    np.testing.assert_allclose(rows[3], encode_images(encoder.model, [other])[0], atol=1e-6)


def test_noise_below_the_threshold_is_reused_a_real_change_is_not(tiny_checkpoint, monkeypatch):
    encoder, sizes = counting_encoder(monkeypatch, tiny_checkpoint)
    slide = picture(224, 298, 1)
    noisy = np.clip(slide.astype(int) + np.random.default_rng(5).integers(-3, 4, slide.shape), 0, 255).astype(np.uint8)
    moved = np.roll(slide, 40, axis=1)
    doc = still_video([slide, noisy, moved])
    encoder.handle('/index', DocList[VideoDoc]([doc]), {})
    assert sizes == [2]
    assert np.array_equal(doc.frames[0].embedding, doc.frames[1].embedding)
    assert not np.array_equal(doc.frames[0].embedding, doc.frames[2].embedding)


def test_a_slow_drift_is_compared_with_the_last_encoded_keyframe():
    from executors.image_encoder import reuse_sources

    base = np.full((224, 298, 3), 100, np.uint8)
    fade = [base + step for step in range(0, 10)]  # one grey level per keyframe
    assert reuse_sources(fade, 2.0) == [0, 0, 2, 2, 4, 4, 6, 6, 8, 8]
    assert reuse_sources(fade, 0) == list(range(10))


def test_moving_footage_gets_the_same_embeddings_with_or_without_reuse(tiny_checkpoint):
    with_reuse, without = video(6), video(6)
    ImageEncoder(model=str(tiny_checkpoint), device='cpu', batch_size=4).handle('/index', DocList[VideoDoc]([with_reuse]), {})
    ImageEncoder(model=str(tiny_checkpoint), device='cpu', batch_size=4,
                 reuse_below=0).handle('/index', DocList[VideoDoc]([without]), {})
    np.testing.assert_array_equal(np.stack([f.embedding for f in with_reuse.frames]),
                                  np.stack([f.embedding for f in without.frames]))


def test_reuse_below_comes_from_flow_yml_and_is_checked(tiny_checkpoint, tmp_path):
    path = tmp_path / 'flow.yml'
    path.write_text('executors:\n  - uses: ImageEncoder\n    with:\n      reuse_below: 0\n')
    with Flow(path, model=str(tiny_checkpoint)) as flow:
        assert flow.executors[0].reuse_below == 0
    path.write_text('executors:\n  - uses: ImageEncoder\n    with:\n      reuse_below: -1\n')
    with pytest.raises(ConfigError, match=r'ImageEncoder: reuse_below must be a number of grey levels >= 0'):
        Flow(path, model=str(tiny_checkpoint))


def test_the_onnx_text_tower_equals_encode_text(model):
    pytest.importorskip('onnx')
    from executors.models.clip_encoding import encode_texts
    from executors.models.text_onnx import encode_tokens_onnx

    tokens = tokenize(QUERIES + [''])
    with torch.inference_mode():
        assert float((encode_tokens_onnx(model, tokens) - model.encode_text(tokens)).abs().max()) < 1e-5
        assert float((encode_tokens_onnx(model, tokens[1:2]) - model.encode_text(tokens[1:2])).abs().max()) < 1e-5
    np.testing.assert_allclose(encode_texts(model, QUERIES, runtime='onnxruntime'), encode_texts(model, QUERIES),
                               atol=1e-5)


def test_the_onnx_text_tower_refuses_an_int8_model_and_unknown_runtimes_are_config_errors(tiny_checkpoint):
    from executors.models.clip_encoding import encode_texts

    int8 = load_clip(str(tiny_checkpoint), 'cpu', quantize='int8')
    with pytest.raises(ModelError, match='stock fp32 CLIP on the CPU'):
        encode_texts(int8, ['a dog'], runtime='onnxruntime')
    with pytest.raises(ConfigError, match="text runtime must be one of auto, torch, onnxruntime, not 'tvm'"):
        encode_texts(int8, ['a dog'], runtime='tvm')


@pytest.mark.parametrize('source, encoded', [('smptebars', 1), ('testsrc2', 4)])
def test_a_still_test_card_is_encoded_once_moving_footage_every_keyframe(tiny_checkpoint, tmp_path, monkeypatch,
                                                                          source, encoded):
    from executors.video_loader import VideoLoader
    from tests.factories import make_video

    path = make_video(tmp_path / f'{source}.mp4', duration=4, size='640x360', source=source)
    docs = VideoLoader(workspace=str(tmp_path / 'workspace'), chunk_frames=0).handle(
        '/index', DocList[VideoDoc]([VideoDoc(uri=str(path))]), {})
    encoder, sizes = counting_encoder(monkeypatch, tiny_checkpoint)
    encoder.handle('/index', docs, {})
    assert len(docs[0].frames) == 4 and sum(sizes) == encoded
    assert all(frame.embedding is not None for frame in docs[0].frames)


def test_bf16_keyframes_stay_close_to_fp32_and_bf16_is_unquantised_only(tiny_checkpoint, tmp_path):
    fp32, bf16 = video(4), video(4)
    ImageEncoder(model=str(tiny_checkpoint), device='cpu', reuse_below=0, precision='fp32').handle('/index', DocList[VideoDoc]([fp32]), {})
    ImageEncoder(model=str(tiny_checkpoint), device='cpu', reuse_below=0,
                 precision='bf16').handle('/index', DocList[VideoDoc]([bf16]), {})
    cosine = np.sum(np.stack([f.embedding for f in fp32.frames]) * np.stack([f.embedding for f in bf16.frames]), axis=1)
    assert cosine.min() > 0.99 and all(f.embedding.dtype == np.float32 for f in bf16.frames)
    path = tmp_path / 'flow.yml'
    for setting, message in (('precision: fp16', "precision must be one of auto, fp32, bf16, not 'fp16'"),
                             ('precision: bf16\n      quantize: int8', "precision 'bf16' runs with an unquantised model")):
        path.write_text(f'with:\n  device: cpu\nexecutors:\n  - uses: ImageEncoder\n    with:\n      {setting}\n')
        with pytest.raises(ConfigError, match=message):
            Flow(path, model=str(tiny_checkpoint))


def test_warming_up_loads_clip_though_text_queries_no_longer_need_it(tiny_checkpoint, monkeypatch):
    """The page and `serve` warm up: CLIP loads then, not at the first upload or image query."""
    loaded = []
    monkeypatch.setattr('executors.models.clip_model.load_clip', lambda *args, **kwargs: loaded.append(args) or 'clip')
    encoder = ImageEncoder(model=str(tiny_checkpoint), device='cpu')
    assert encoder.handles('/warm') and not loaded
    encoder.warm(DocList[VideoDoc]())
    assert loaded == [(str(tiny_checkpoint), 'cpu')]
