"""Which storage backend a flow uses, and each engine's options: flow.yml's Indexer `backend:`,
`index:` and one block per engine (`ivf:`, `hnsw:`, `milvus:`); CLI --backend, --uri."""
from dataclasses import dataclass, fields
from pathlib import Path

from executors.errors import ConfigError
from executors.storage.interface import Storage

BACKENDS = ('local', 'milvus')
ALIASES = {'hnswlib': 'local'}  # the local backend's name before it ran faiss IVF by default
INDEXES = ('ivf', 'hnsw')


@dataclass(frozen=True)
class IvfOptions:
    """index: ivf (faiss): lists scanned per query, of ~4 * sqrt(keyframes)."""

    nprobe: int = 96


@dataclass(frozen=True)
class HnswOptions:
    """index: hnsw (hnswlib), and Milvus's HNSW index: links per keyframe, build and search effort."""

    M: int = 16
    ef_construction: int = 100
    ef_search: int = 256


@dataclass(frozen=True)
class MilvusOptions:
    """backend: milvus: a Milvus Lite file (default <workspace>/milvus.db) or a server URI, and its token."""

    uri: str = ''
    token: str = ''


ENGINE_OPTIONS = {'ivf': IvfOptions, 'hnsw': HnswOptions, 'milvus': MilvusOptions}


def engine_options(name: str, given) -> IvfOptions | HnswOptions | MilvusOptions:
    """flow.yml's block `name` (a mapping, or the options themselves) as its engine's options; a
    ConfigError naming the key (`error.key`) for an option the engine does not have or a bad value."""
    cls = ENGINE_OPTIONS[name]
    if isinstance(given, cls):
        options = given
    elif isinstance(given, dict):
        known = [f.name for f in fields(cls)]
        for key in given:
            if key not in known:
                raise _keyed(f"{name} has no option '{key}' (it takes {', '.join(known)})", name, key)
        options = cls(**given)
    else:
        raise _keyed(f'{name} must be a mapping of its options, not {given!r}', name)
    for field in fields(cls):
        value = getattr(options, field.name)
        if field.type is int and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise _keyed(f'{name}.{field.name} must be a positive integer, not {value!r}', name, field.name)
        if field.type is str and not isinstance(value, str):
            raise _keyed(f'{name}.{field.name} must be a string, not {value!r}', name, field.name)
    return options


def read_by(backend: str, index: str) -> set[str]:
    """The settings the chosen engine reads: the local folder reads `index` and that index's block;
    Milvus builds an HNSW index of its own and reads `hnsw` and `milvus`."""
    return {'index', index} if backend == 'local' else {'hnsw', 'milvus'}


def check_engine(backend: str, index: str, options: dict) -> str:
    """The backend's name (an alias resolved); ConfigError naming the key for a setting changed from
    its default that the chosen engine would not read."""
    name = ALIASES.get(backend, backend)
    if name not in BACKENDS:
        raise _keyed(f"backend must be one of {', '.join(BACKENDS)} (hnswlib: an old name of local), not {backend!r}",
                     'backend')
    if index not in INDEXES:
        raise _keyed(f"index must be one of {', '.join(INDEXES)}, not {index!r}", 'index')
    read = read_by(name, index)
    for block, given in options.items():
        if block in read:
            continue
        for field in fields(given):
            value, default = getattr(given, field.name), field.default
            if value != default:
                raise _keyed(f"{block}.{field.name}: {value!r} does nothing under backend {name}"
                             f"{f' with index {index}' if name == 'local' else ''} (it reads "
                             f"{', '.join(sorted(read - {'index'}))}); remove it or choose that engine",
                             block, field.name)
    return name


def open_storage(backend: str, *, workspace: str, index: str = 'ivf', ivf: IvfOptions = IvfOptions(),
                 hnsw: HnswOptions = HnswOptions(), milvus: MilvusOptions = MilvusOptions(),
                 lock_wait: float = 60.0) -> Storage:
    """The backend's Storage: 'local' keeps everything in the `workspace` folder with the `index`
    ANN index; 'milvus' keeps it in Milvus at `milvus.uri` (Milvus Lite when it is a file path,
    default <workspace>/milvus.db)."""
    backend = ALIASES.get(backend, backend)
    if backend == 'local':
        from executors.storage.local.local_storage import HnswlibStorage

        return HnswlibStorage(workspace, index=index, M=hnsw.M, ef_construction=hnsw.ef_construction,
                              ef_search=hnsw.ef_search, nprobe=ivf.nprobe, lock_wait=lock_wait)
    if backend == 'milvus':
        from executors.storage.milvus.milvus_storage import MilvusStorage

        return MilvusStorage(milvus.uri or str(Path(workspace) / 'milvus.db'), token=milvus.token, workspace=workspace,
                             M=hnsw.M, ef_construction=hnsw.ef_construction, ef_search=hnsw.ef_search)
    raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")


def _keyed(message: str, *key: str) -> ConfigError:
    return ConfigError(message, key=key)
