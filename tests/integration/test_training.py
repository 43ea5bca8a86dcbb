"""`flow.py train`: tuned files, zero-initialised methods, the loss, and a learnable synthetic set."""
import copy
import csv
import json

import numpy as np
import pytest
import torch

from evaluation import Caption, Dataset
from executors.models.clip_encoding import encode_images, encode_texts
from executors.models.clip_model import image_space_id, load_base_copy, load_clip
from executors.errors import ModelError, VcedError
from executors.models.tuned_model import METHODS, install, is_tuned_file, read_tuned, trainable_names, write_tuned
from flow import main
from tests.factories import make_video, write_discriminative_clip_checkpoint
from training.data import Pairs
from training.losses import symmetric_info_nce
from training.methods import BackboneMethod
from training.trainer import Settings, train

CONFIGS = {'query': {'hidden': 16}, 'adapter': {'bottleneck': 8}, 'prompt': {'tokens': 4, 'towers': ['text', 'visual']}}
SENTENCES = ['a red screen', 'a blue screen', 'a green screen', 'a yellow screen']
COLOURS = [(230, 20, 20), (20, 20, 230), (20, 230, 20), (230, 230, 20)]


@pytest.fixture(scope='module')
def base(tmp_path_factory):
    return str(write_discriminative_clip_checkpoint(tmp_path_factory.mktemp('weights') / 'disc.pt'))


def tuned_file(path, base: str, method: str, model=None) -> str:
    model = model or install(load_base_copy(base), method, CONFIGS[method])
    state = {n: p for n, p in model.named_parameters() if n in set(trainable_names(model))}
    write_tuned(path, method, CONFIGS[method], {'model': base, 'identity': image_space_id(base)}, state, {'epochs': 1})
    return str(path)


def colour_frames(seed: int = 0) -> list[np.ndarray]:
    """One clip (2 frames, 224 x 224) per colour, with a little noise."""
    rng = np.random.default_rng(seed)
    return [np.clip(np.array(c) + rng.normal(0, 12, (2, 224, 224, 3)), 0, 255).astype(np.uint8) for c in COLOURS]


def colour_pairs() -> Pairs:
    return Pairs.from_dataset(Dataset([Caption(f'v{i}', s) for i, s in enumerate(SENTENCES)], {}))


def test_tuned_file_round_trips_and_holds_only_the_trained_parts(base, tmp_path):
    model = install(load_base_copy(base), 'adapter', CONFIGS['adapter'])
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in set(trainable_names(model)):
                p.add_(0.01)
    path = tuned_file(tmp_path / 'adapter.pt', base, 'adapter', model)
    data = read_tuned(path)
    assert is_tuned_file(path) and not is_tuned_file(base)
    assert data['method'] == 'adapter' and data['base'] == {'model': base, 'identity': image_space_id(base)}
    assert set(data['state']) == set(trainable_names(model)) and all('.adapter.' in k for k in data['state'])
    loaded = load_clip(path, 'cpu')
    for name, value in data['state'].items():
        assert torch.equal(loaded.state_dict()[name], value)
    assert (tmp_path / 'adapter.pt').stat().st_size < 200_000  # the parts, not the base (~9 MB even for tiny)


@pytest.mark.parametrize('method', METHODS)
def test_a_fresh_tuned_model_equals_its_base(base, tmp_path, method):
    path = tuned_file(tmp_path / f'{method}.pt', base, method)
    tuned, plain = load_clip(path, 'cpu'), load_clip(base, 'cpu')
    assert tuned is not plain
    texts = ['a red screen', 'the cat sat on the mat, twice']
    images = colour_frames()[0][:2]
    assert np.allclose(encode_texts(tuned, texts), encode_texts(plain, texts), atol=1e-6)  # the fast text path
    assert np.allclose(encode_images(tuned, list(images)), encode_images(plain, list(images)), atol=1e-6)


def test_image_space_identity_is_the_base_only_for_the_query_method(base, tmp_path):
    identities = {m: image_space_id(tuned_file(tmp_path / f'{m}.pt', base, m)) for m in METHODS}
    assert identities['query'] == image_space_id(base)
    assert len({identities['adapter'], identities['prompt'], image_space_id(base)}) == 3


def test_a_missing_or_different_base_is_one_line(base, tmp_path):
    moved = tmp_path / 'moved.pt'
    moved.write_bytes(open(base, 'rb').read())
    path = tuned_file(tmp_path / 'query.pt', str(moved), 'query')
    other = write_discriminative_clip_checkpoint(tmp_path / 'other.pt', seed=1)
    moved.write_bytes(other.read_bytes())
    with pytest.raises(ModelError, match=r"query.pt: its base model '.*moved.pt' is not the one it was trained on"):
        load_clip(path, 'cpu')
    moved.unlink()
    with pytest.raises(ModelError, match=r"query.pt: its base model '.*moved.pt' is missing"):
        load_clip(path, 'cpu')
    with pytest.raises(ModelError, match='cannot be the base of another'):
        load_base_copy(tuned_file(tmp_path / 'q2.pt', base, 'query'))


def test_captions_shared_by_videos_are_multiple_positives():
    pairs = Pairs.from_dataset(Dataset([Caption('a', 'red'), Caption('b', 'Red '), Caption('b', 'blue'),
                                        Caption('c', 'green')], {}))
    assert pairs.video_ids == ['a', 'b', 'c']
    assert pairs.positives.tolist() == [[True, True, False], [True, True, False], [False, True, False],
                                        [False, False, True]]
    text = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    perfect = symmetric_info_nce(text, text, torch.eye(3), torch.tensor(4.6))
    assert perfect < symmetric_info_nce(text, text.roll(1, 0), torch.eye(3), torch.tensor(4.6))


@pytest.mark.parametrize('method', ['adapter', 'prompt'])
def test_adapter_and_prompt_reduce_the_loss_and_change_only_their_parts(tiny_checkpoint, method):
    torch.manual_seed(0)
    model = install(load_base_copy(str(tiny_checkpoint)), method, CONFIGS[method])
    before = copy.deepcopy(model.state_dict())
    pairs = colour_pairs()
    step = BackboneMethod(model, colour_frames(), pairs, colour_frames(1), pairs, 'cpu')
    scale = torch.nn.Parameter(torch.tensor(2.0))
    optimiser = torch.optim.AdamW(step.parameters() + [scale], lr={'adapter': 1e-2, 'prompt': 5e-2}[method])
    rows = np.arange(len(pairs))
    losses = []
    for _ in range(8):
        loss = step.loss(rows, scale)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss))
    assert losses[-1] < 0.95 * losses[0] and losses == sorted(losses, reverse=True), losses
    changed = {n for n, v in model.state_dict().items() if not torch.equal(v, before[n])}
    assert changed and changed <= set(trainable_names(model))


def test_ctrl_c_leaves_the_best_epoch_so_far():
    class Interrupted:
        calls = 0
        weight = torch.nn.Parameter(torch.zeros(1))

        def parameters(self):
            return [self.weight]

        def loss(self, rows, scale):
            self.calls += 1
            if self.calls > 2:
                raise KeyboardInterrupt
            return (self.weight - 1).pow(2).sum()

        def validate(self):
            return float(self.weight) * 100

    saved = []
    outcome = train(Interrupted(), 4, Settings(epochs=5, batch=2, lr=0.1), 2.0, saved.append, progress=False)
    assert outcome.interrupted and outcome.best_epoch == 1
    assert [m['best_epoch'] for m in saved] == [1]  # the untrained parts are never saved


def test_no_epoch_as_good_as_the_untrained_model_saves_nothing_and_run_says_so(tmp_path):
    from training.command import _outcome_line

    class Worse:
        weight = torch.nn.Parameter(torch.zeros(1))
        scores = iter([50.0, 40.0, 30.0, 20.0])

        def parameters(self):
            return [self.weight]

        def loss(self, rows, scale):
            return (self.weight - 1).pow(2).sum()

        def validate(self):
            return next(self.scores)

    saved = []
    outcome = train(Worse(), 4, Settings(epochs=3, batch=2, lr=0.1), 2.0, saved.append, progress=False)
    assert outcome.best_epoch == 0 and saved == []
    with pytest.raises(VcedError, match=r'every epoch did worse on validation than the untrained model '
                                   r'\(R@1 50.0\): .*q.pt not written'):
        _outcome_line(outcome, str(tmp_path / 'q.pt'))


def test_query_tuning_generalises_to_unseen_videos_of_the_same_concepts(base, tmp_path, capsys):
    """Seven visual concepts, three training videos each and one unseen test video each (another
    size or shade): the base is at chance, the tuned query adapter near-perfect, and `eval --model`
    reads the tuned file."""
    sizes = ['96x72', '128x96', '80x60', '112x84']
    concepts = {'a red screen': 'color=c=0x{}0000', 'a blue screen': 'color=c=0x0000{}',
                'a green screen': 'color=c=0x00{}00', 'a yellow screen': 'color=c=0x{0}{0}00',
                'colour bars': 'smptebars', 'a test pattern': 'testsrc2', 'a fractal': 'mandelbrot'}
    rows = {'train': [], 'test': []}
    for k, (sentence, source) in enumerate(concepts.items()):
        for i, (size, shade) in enumerate(zip(sizes, ['FF', 'E0', 'C0', 'F0'])):
            make_video(tmp_path / 'videos' / f'c{k}v{i}.mp4', duration=1.0, size=size, rate=10,
                       source=source.format(shade))
            rows['test' if i == 3 else 'train'].append((f'c{k}v{i}', sentence))
    for name, table in rows.items():
        with open(tmp_path / f'{name}.csv', 'w', newline='') as f:
            csv.writer(f).writerows([('video_id', 'sentence'), *table])
    common = ['--workspace', str(tmp_path / 'ws'), '--videos', str(tmp_path / 'videos'), '--frames', '4']
    out = tmp_path / 'query.pt'
    assert main(['train', *common, '--model', base, '--captions', str(tmp_path / 'train.csv'),
                 '--val', str(tmp_path / 'test.csv'), '--out', str(out), '--epochs', '60', '--patience', '60']) == 0
    metrics = read_tuned(out)['metrics']
    assert metrics['history'][0]['val_r1'] <= 100 / 7 + 1e-6  # the base: at chance (7 concepts) or below
    assert metrics['val_r1'] >= 85
    capsys.readouterr()
    assert main(['eval', *common, '--model', str(out), '--captions', str(tmp_path / 'test.csv'), '--json']) == 0
    report = json.loads(capsys.readouterr().out)
    assert report['results']['mean']['text_to_video']['R@1'] >= 85


def test_a_query_tuned_file_searches_the_base_workspace_and_an_adapter_one_is_refused(base, tmp_path, capsys):
    video = make_video(tmp_path / 'red.mp4', duration=1.0, size='96x72', rate=10, source='color=c=red')
    common = ['--workspace', str(tmp_path / 'ws')]
    assert main(['index', *common, '--model', base, str(video)]) == 0
    query, adapter = (tuned_file(tmp_path / f'{m}.pt', base, m) for m in ('query', 'adapter'))
    capsys.readouterr()
    assert main(['search', *common, '--model', query, 'a red screen', '--json']) == 0
    assert [hit['video'] for hit in json.loads(capsys.readouterr().out)] == [str(video)]
    assert main(['search', *common, '--model', adapter, 'a red screen']) == 1
    error = capsys.readouterr().err.strip()
    assert error.count('\n') == 0 and 'adapter.pt' in error and 'new --workspace' in error
