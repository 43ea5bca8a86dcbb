"""flow.yml says what runs: one default per setting (the code's equal flow.yml's), each storage engine's
options under its own name, and an option the chosen engine would ignore is an error at its line."""
import dataclasses
import inspect
from pathlib import Path

import pytest
import yaml

from executors.errors import ConfigError
from executors.models import precision
from executors.models.precision import cpu_flags, resolve_precision
from executors.registry import executor_class
from executors.storage.local.local_storage import HnswlibStorage
from library.pipeline import Flow

ROOT = Path(__file__).resolve().parents[2]


def plain(value):
    """A signature default as flow.yml would write it (an engine's options as their mapping)."""
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


def test_every_executor_default_equals_flow_yml():
    """Each executor's own settings, and the top-level ones it takes (the Indexer's `model` is '' by
    default: it then records the image space the encoder names, whatever model that is)."""
    config = yaml.safe_load((ROOT / 'flow.yml').read_text(encoding='utf-8'))
    checked = 0
    for executor in config['executors']:
        parameters = inspect.signature(executor_class(executor['uses']).__init__).parameters
        shared = {k: v for k, v in config['with'].items() if k in parameters and parameters[k].default != ''}
        settings = {**shared, **executor['with']}
        for key, value in settings.items():
            default = plain(parameters[key].default)
            assert default == value, f"{executor['uses']}.{key}: the code's default is {default!r}"
            checked += 1
    assert checked > 40


def indexer_flow(tmp_path: Path, settings: str) -> Path:
    path = tmp_path / 'flow.yml'
    path.write_text(f'with:\n  workspace: {tmp_path / "ws"}\nexecutors:\n  - uses: Indexer\n    with:\n{settings}',
                    encoding='utf-8')
    return path


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text(encoding='utf-8').splitlines(), 1) if text in line)


@pytest.mark.parametrize('settings, culprit, reason', [
    ('      index: hnsw\n      ivf:\n        nprobe: 64\n', 'nprobe: 64',
     "Indexer: ivf.nprobe: 64 does nothing under backend local with index hnsw (it reads hnsw)"),
    ('      hnsw:\n        M: 32\n', 'M: 32',
     "Indexer: hnsw.M: 32 does nothing under backend local with index ivf (it reads ivf)"),
    ('      backend: milvus\n      ivf: {nprobe: 8}\n', 'ivf:',
     "Indexer: ivf.nprobe: 8 does nothing under backend milvus (it reads hnsw, milvus)"),
    ('      milvus:\n        uri: http://localhost:19530\n', 'uri:',
     "Indexer: milvus.uri: 'http://localhost:19530' does nothing under backend local with index ivf"),
    ('      ivf:\n        M: 16\n', 'M: 16', "Indexer: ivf has no option 'M' (it takes nprobe)"),
    ('      nprobe: 32\n', 'nprobe', "Indexer has no parameter 'nprobe'"),
    ('      backend: faiss\n', 'backend', "Indexer: backend must be one of local, milvus"),
])
def test_an_option_the_chosen_engine_ignores_is_an_error_at_its_line(tmp_path, settings, culprit, reason):
    path = indexer_flow(tmp_path, settings)
    with pytest.raises(ConfigError) as error:
        Flow(path)
    assert str(error.value).startswith(f'{path}:{line_of(path, culprit)}: {reason}')


def test_an_override_that_the_engine_ignores_names_no_flow_yml_line(tmp_path):
    path = indexer_flow(tmp_path, '      index: ivf\n')
    with pytest.raises(ConfigError, match=r"^uri 'x\.db' \(an override\): Indexer: milvus\.uri: 'x\.db' does nothing "
                                          r"under backend local"):
        Flow(path, uri='x.db')
    with pytest.raises(ConfigError, match=r"^backend 'foo' \(the page\): Indexer: backend must be one of local, milvus "
                                          r"\(hnswlib: an old name"):
        Flow(path, origin='the page', backend='foo')


@pytest.mark.parametrize('backend', ['local', 'hnswlib'])
def test_local_is_the_default_backend_and_hnswlib_its_alias(tmp_path, backend):
    with Flow(indexer_flow(tmp_path, f'      backend: {backend}\n      hnsw: {{M: 16}}\n')) as flow:
        assert isinstance(flow.executors[0].storage, HnswlibStorage)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / 'cpuinfo'
    cpuinfo.write_text('processor\t: 0\nflags\t\t: fpu sse avx512f amx_bf16 amx_tile\n\nprocessor\t: 1\n')
    assert {'avx512f', 'amx_bf16'} <= cpu_flags(cpuinfo)
    assert cpu_flags(tmp_path / 'missing') == set()


@pytest.mark.parametrize('flags, chosen', [({'avx512f', 'avx2'}, 'fp32'), ({'amx_bf16'}, 'bf16'),
                                           ({'avx512_bf16'}, 'bf16'), (set(), 'fp32')])
def test_precision_auto_takes_bf16_only_on_a_cpu_that_runs_it_natively(monkeypatch, flags, chosen):
    monkeypatch.setattr(precision, 'cpu_flags', lambda: flags)
    assert resolve_precision('auto', 'cpu') == chosen
    assert resolve_precision('auto', 'cpu', quantize='int8') == 'fp32'
    assert resolve_precision('bf16', 'cpu') == 'bf16' and resolve_precision('fp32', 'cpu') == 'fp32'


def test_precision_auto_on_cuda_follows_the_gpu(monkeypatch):
    import torch  # precision.py imports it only to ask about CUDA

    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    for supported, chosen in ((True, 'bf16'), (False, 'fp32')):
        monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda: supported)
        assert resolve_precision('auto', 'cuda') == chosen
    with pytest.raises(ConfigError, match='this GPU has no bfloat16 support'):
        resolve_precision('bf16', 'cuda')
    with pytest.raises(ConfigError, match="precision must be one of auto, fp32, bf16, not 'fp16'"):
        resolve_precision('fp16', 'cpu')
