"""The Flow (flow.yml's executors, run in order for an endpoint) and VCED's command line."""
import argparse
import importlib
import inspect
import itertools
import json
import logging
import os
import re
import shutil
import sys
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

import yaml

from executors.base import Executor
from executors.documents import DocList, QueryDoc, SegmentDoc, VideoDoc
from executors.errors import ConfigError, QueryError, VcedError, WorkspaceError

VIDEO_EXTENSIONS = {'.mp4', '.m4v', '.mov', '.mkv', '.webm', '.avi', '.mpg', '.mpeg', '.wmv', '.flv', '.ts', '.3gp'}


class Flow:
    """Builds flow.yml's executors once and routes each endpoint's docs through them in order.

    flow.yml has a top-level `with:` (parameters given to every executor that takes them, such as
    `workspace` and `model`) and `executors:`, a list of `{uses: ClassName, with: {...}}`.
    `overrides` replace the top-level parameters (the CLI's --workspace and --model).
    """

    def __init__(self, path: str | Path = 'flow.yml', **overrides):
        self.path = Path(path)
        self.executors: list[Executor] = []
        try:
            text = self.path.read_text(encoding='utf-8')
        except OSError as e:
            raise ConfigError(f'{self.path}: cannot read the flow file ({e.strerror})') from e
        overrides = {k: v for k, v in overrides.items() if v is not None}
        root, config = _parse(self.path, text)
        # what decides the executors' behaviour: the top-level parameters as overridden, and each executor's
        self.settings = {'with': {**(config.get('with') or {}), **overrides}, 'executors': config['executors']}
        try:
            for spec in _executor_specs(self.path, root, config, overrides):
                self.executors.append(_build_executor(self.path, spec))
        except BaseException:
            self.close()
            raise

    def post(self, endpoint: str, docs: DocList | None = None, parameters: dict | None = None) -> DocList:
        """Run `endpoint` over `docs` through every executor; return what the last one returns."""
        return next(self.stream(endpoint, [docs if docs is not None else DocList[VideoDoc]()], parameters))

    def stream(self, endpoint: str, requests: Iterable[DocList], parameters: dict | None = None) -> Iterator[DocList]:
        """Run `endpoint` over each DocList of `requests`, yielding each result in order.

        The first executor (decoding, on /index) works on the next request while the others
        (encoding, indexing) work on the current one, so neither waits for the other.
        """
        if not any(e.handles(endpoint) for e in self.executors):
            handled = sorted({p for e in self.executors for p in e._handlers})
            raise ConfigError(f"unknown endpoint '{endpoint}': {self.path} handles {', '.join(handled)}")
        parameters = parameters or {}
        first, rest = self.executors[0], self.executors[1:]
        with ThreadPoolExecutor(max_workers=1) as ahead:
            pending = None
            for docs in requests:
                started = ahead.submit(first.handle, endpoint, docs, parameters)
                if pending is not None:
                    yield self._finish(endpoint, pending.result(), rest, parameters)
                pending = started
            if pending is not None:
                yield self._finish(endpoint, pending.result(), rest, parameters)

    @staticmethod
    def _finish(endpoint: str, docs: DocList, executors: list[Executor], parameters: dict) -> DocList:
        for executor in executors:
            docs = executor.handle(endpoint, docs, parameters)
        return docs

    def close(self) -> None:
        """Close every executor (persisting its state), last first."""
        for executor in reversed(self.executors):
            executor.close()
        self.executors = []

    def __enter__(self) -> 'Flow':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _parse(path: Path, text: str) -> tuple[yaml.Node, dict]:
    """flow.yml as YAML nodes (for line numbers) and as data, checked to have executors."""
    try:
        root = yaml.compose(text)
        config = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f'{path}: not valid YAML: {e}'.replace('\n', ' ')) from e
    if not isinstance(config, dict) or not isinstance(config.get('executors'), list) or not config['executors']:
        raise ConfigError(f"{path}: needs an 'executors:' list with at least one executor")
    return root, config


def _executor_specs(path: Path, root: yaml.Node, config: dict, overrides: dict) -> Iterator[dict]:
    """Each executor's class name, keyword arguments and the flow.yml lines they came from."""
    root_nodes = {k.value: v for k, v in root.value}
    shared = {**(config.get('with') or {}), **overrides}
    for node, entry in zip(root_nodes['executors'].value, config['executors']):
        line = node.start_mark.line + 1
        if not isinstance(entry, dict) or not isinstance(entry.get('uses'), str):
            raise ConfigError(f"{path}:{line}: each executor needs 'uses: ClassName'")
        unknown = set(entry) - {'uses', 'with', 'name'}
        if unknown:
            raise ConfigError(f"{path}:{line}: unknown key '{sorted(unknown)[0]}' (an executor takes uses, with, name)")
        params = entry.get('with') or {}
        if not isinstance(params, dict):
            raise ConfigError(f"{path}:{line}: 'with' of {entry['uses']} must be a mapping")
        param_lines = {}
        for key_node, value_node in node.value:
            if key_node.value == 'with' and hasattr(value_node, 'value') and isinstance(value_node.value, list):
                param_lines = {k.value: k.start_mark.line + 1 for k, _ in value_node.value}
        yield {'uses': entry['uses'], 'line': line, 'params': params, 'param_lines': param_lines,
               'shared': shared, 'overrides': overrides}


def _executor_class(name: str) -> type:
    """`VideoLoader` is executors.video_loader.VideoLoader; a dotted name is module.Class."""
    if '.' in name:
        module_name, _, class_name = name.rpartition('.')
    else:
        module_name, class_name = 'executors.' + re.sub(r'(?<!^)(?=[A-Z])', '_', name).lower(), name
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except ModuleNotFoundError as e:
        if e.name is None or not module_name.startswith(e.name):
            raise  # the module exists but one of its own imports is missing
        raise LookupError(name) from e
    except AttributeError as e:
        raise LookupError(name) from e
    if not (isinstance(cls, type) and issubclass(cls, Executor)):
        raise LookupError(name)
    return cls


def _build_executor(path: Path, spec: dict) -> Executor:
    line = spec['line']
    try:
        cls = _executor_class(spec['uses'])
    except LookupError as e:
        raise ConfigError(f"{path}:{line}: unknown executor '{spec['uses']}'") from e
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != 'self']
    for key in spec['params']:
        if key not in accepted:
            where = spec['param_lines'].get(key, line)
            raise ConfigError(f"{path}:{where}: {spec['uses']} has no parameter '{key}' (it takes {', '.join(accepted)})")
    kwargs = {k: v for k, v in spec['shared'].items() if k in accepted}
    kwargs.update(spec['params'])
    kwargs.update({k: v for k, v in spec['overrides'].items() if k in accepted})
    try:
        return cls(**kwargs)
    except (ConfigError, TypeError, ValueError) as e:
        raise ConfigError(f"{path}:{line}: {spec['uses']}: {e}") from e


# ----------------------------------------------------------------------------- what the CLI and the page share


def find_videos(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Every video file named in `paths`: files as given, folders searched recursively (sorted)."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            seen = set()
            for folder, dirs, files in os.walk(path, followlinks=True):
                real = os.path.realpath(folder)
                if real in seen:  # a symlink loop
                    dirs[:] = []
                    continue
                seen.add(real)
                dirs.sort()
                for name in sorted(files):
                    if Path(name).suffix.lower() in VIDEO_EXTENSIONS:
                        yield Path(folder) / name
        else:
            yield path


def index_videos(flow: Flow, paths: Iterable[str | Path], progress: Callable | None = None) -> Iterator[VideoDoc]:
    """Index each video, one at a time, yielding its VideoDoc with `status` and `error` set.

    `progress(video, stage, done, total)` is called as frames are decoded and encoded. Videos
    already in the index are recognised by their content hash and not decoded again.
    """
    indexed_ids = {video.video_id for video in flow.post('/list')}
    requests = (DocList[VideoDoc]([VideoDoc(uri=str(p))]) for p in paths)
    for docs in flow.stream('/index', requests, parameters={'progress': progress, 'indexed_ids': indexed_ids}):
        yield from docs


def search(flow: Flow, text: str = '', image=None, top: int = 10, by: str = 'segment') -> DocList[SegmentDoc]:
    """The best `top` matches of a text or an image (RGB uint8 array), as segments or whole videos."""
    query = QueryDoc(text=text, image=image)
    return flow.post('/search', DocList[QueryDoc]([query]), parameters={'top': top, 'by': by})[0].matches


def read_image(source: str | Path | BinaryIO, name: str = ''):
    """The RGB uint8 array of an image file (a path or an open binary file, such as an upload)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    name = name or str(source)
    try:
        with Image.open(source) as image:
            return np.asarray(image.convert('RGB'))
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise QueryError(f'{name}: not a readable image ({e.__class__.__name__})') from e


def save_upload(name: str, data: bytes | BinaryIO, folder: str | Path = 'data/videos') -> Path:
    """Save an uploaded file in `folder` under a safe form of `name`, never overwriting a file.

    The name loses any folder part and unsafe characters (letters of every script stay); a
    clash gets a numbered name ('clip.mp4', 'clip-1.mp4', ...).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WorkspaceError(f'{folder}: cannot create the upload folder ({e.strerror})') from e
    stem, suffix = _safe_file_name(name)
    for n in itertools.count():
        path = folder / f"{stem}{f'-{n}' if n else ''}{suffix}"
        try:
            with open(path, 'xb') as out:  # 'x': fails instead of overwriting, even against a racing writer
                if isinstance(data, bytes):
                    out.write(data)
                else:
                    shutil.copyfileobj(data, out)
            return path
        except FileExistsError:
            continue
        except OSError as e:
            path.unlink(missing_ok=True)
            raise WorkspaceError(f'{path}: cannot save the upload ({e.strerror})') from e


def _safe_file_name(name: str) -> tuple[str, str]:
    """(stem, suffix) of `name` without folders, control or path characters, at most ~150 bytes."""
    base = unicodedata.normalize('NFC', name.replace('\\', '/').rsplit('/', 1)[-1])
    stem, suffix = os.path.splitext(base)
    if not re.fullmatch(r'\.[A-Za-z0-9]{1,10}', suffix):
        stem, suffix = base, ''
    stem = re.sub(r'[^\w\-.,()\[\] ]+', '_', stem).strip(' ._')
    stem = stem.encode('utf-8')[:150].decode('utf-8', 'ignore').rstrip(' .') or 'upload'
    return stem, suffix.lower()


def one_line(text: str) -> str:
    """`text` with control characters (newlines in file names, terminal escapes) written as escapes."""
    return re.sub(r'[\x00-\x1f\x7f]', lambda m: repr(m.group())[1:-1], text)


def format_time(seconds: float) -> str:
    """mm:ss, or h:mm:ss from an hour on."""
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f'{hours}:{minutes:02d}:{secs:02d}' if hours else f'{minutes:02d}:{secs:02d}'


# ----------------------------------------------------------------------------- the CLI


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('--flow', default='flow.yml', help='the flow file (default: flow.yml)')
    common.add_argument('--workspace', help='where the index lives (default: data/workspace, set in flow.yml)')
    common.add_argument('--model', help='CLIP model name (see clip.available_models()) or checkpoint path')
    parser = argparse.ArgumentParser(prog='flow.py', description='VCED: find the moments in your videos that match a description.')
    commands = parser.add_subparsers(dest='command', required=True)

    index = commands.add_parser('index', parents=[common], help='index video files or folders')
    index.add_argument('paths', nargs='+', metavar='PATH', help='a video file or a folder (searched recursively)')

    find = commands.add_parser('search', parents=[common], help='find the moments matching a sentence or an image')
    find.add_argument('text', nargs='?', default='', help='what to look for, in words')
    find.add_argument('--image', metavar='FILE', help='look for moments like this image instead')
    find.add_argument('--top', type=int, default=10, metavar='N', help='how many results (default 10)')
    find.add_argument('--by', choices=['segment', 'video'], default='segment', help='rank segments or whole videos')
    find.add_argument('--json', action='store_true', help='print one JSON array')

    listing = commands.add_parser('list', parents=[common], help='list the indexed videos')
    listing.add_argument('--json', action='store_true', help='print one JSON array')

    delete = commands.add_parser('delete', parents=[common], help='remove a video from the index')
    delete.add_argument('video', metavar='VIDEO_ID_OR_PATH')

    evaluate = commands.add_parser('eval', parents=[common], help='MSR-VTT-style retrieval metrics on a captioned video set')
    evaluate.add_argument('--videos', required=True, metavar='DIR', help='folder of videos named <video_id>.<ext>')
    evaluate.add_argument('--captions', required=True, metavar='FILE', help='CSV with video_id and sentence columns')
    evaluate.add_argument('--frames', type=int, default=12, metavar='N', help='frames sampled per video (default 12)')
    evaluate.add_argument('--strategy', default='count', help='frame sampling: count (default, as CLIP4Clip), uniform, scene, iframe')
    evaluate.add_argument('--json', action='store_true', help='print one JSON object')
    return parser


def _open_flow(args) -> Flow:
    return Flow(args.flow, workspace=args.workspace, model=args.model)


def _index(args) -> int:
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def progress(video: VideoDoc, stage: str, done: int, total: int) -> None:
        bar = bars.get(video.uri)
        if bar is None:
            bar = bars[video.uri] = tqdm(total=2 * total, desc=Path(video.uri).name[:40], unit='step', leave=False,
                                         file=sys.stderr, disable=None)
        bar.total = max(bar.total, 2 * total)
        bar.n = done + (bar.total // 2 if stage == 'encode' else 0)
        bar.refresh()

    started = time.monotonic()
    counts = {'indexed': 0, 'already indexed': 0, 'failed': 0}
    frames = 0
    with _open_flow(args) as flow:
        for video in index_videos(flow, find_videos(args.paths), progress):
            if video.uri in bars:
                bars.pop(video.uri).close()
            counts[video.status] = counts.get(video.status, 0) + 1
            if video.status == 'failed':
                print(f'failed: {one_line(video.error)}', file=sys.stderr)
            else:
                frames += len(video.frames)
                detail = f' ({len(video.frames)} frames)' if video.status == 'indexed' else ''
                print(f'{video.status}: {one_line(video.uri)}{detail}')
    if not sum(counts.values()):
        raise VcedError(f"no video files in {one_line(', '.join(args.paths))} "
                        f"(looked for {', '.join(sorted(VIDEO_EXTENSIONS))})")
    seconds = time.monotonic() - started
    print(f"{counts['indexed']} indexed, {counts['already indexed']} already indexed, {counts['failed']} failed; "
          f'{frames} frames in {seconds:.1f} s')
    return 1 if counts['failed'] and not (counts['indexed'] or counts['already indexed']) else 0


def _search(args) -> int:
    if bool(args.text.strip()) == bool(args.image):
        raise VcedError('search needs a text or --image FILE, not both' if args.image else 'search needs a text or --image FILE')
    if args.top < 1:
        raise VcedError(f'--top must be at least 1, not {args.top}')
    image = read_image(args.image) if args.image else None
    with _open_flow(args) as flow:
        matches = search(flow, text=args.text, image=image, top=args.top, by=args.by)
    results = [{'video': m.uri, 'video_id': m.video_id, 'start': round(m.start, 3), 'end': round(m.end, 3),
                'timestamp': round(m.timestamp, 3), 'score': round(m.score, 4), 'thumbnail': m.thumbnail}
               for m in matches]
    if args.json:
        print(json.dumps(results, ensure_ascii=False))
    elif not results:
        print('no matches: index some videos first (python flow.py index PATH)')
    for rank, r in enumerate([] if args.json else results, 1):
        print(f"{rank:>3}. {r['score']:.3f}  {format_time(r['start'])}-{format_time(r['end'])}  {one_line(r['video'])}")
    return 0


def _list(args) -> int:
    with _open_flow(args) as flow:
        videos = flow.post('/list')
    rows = [{'video': v.uri, 'video_id': v.video_id, 'duration': round(v.duration, 3), 'frames': v.frame_count,
             'added': v.added} for v in videos]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
    elif not rows:
        print('the index is empty: python flow.py index PATH')
    for r in [] if args.json else rows:
        print(f"{r['video_id'][:12]}  {format_time(r['duration'])}  {r['frames']:>6} frames  {r['added']}  {one_line(r['video'])}")
    return 0


def _delete(args) -> int:
    target = args.video
    doc = VideoDoc(video_id=target) if re.fullmatch(r'[0-9a-f]{6,64}', target) else VideoDoc(uri=target)
    with _open_flow(args) as flow:
        deleted = flow.post('/delete', DocList[VideoDoc]([doc]))
    for video in deleted:
        print(f'deleted {video.video_id[:12]}  {one_line(video.uri)}')
    return 0


def _eval(args) -> int:
    import evaluation

    return evaluation.command(args)


COMMANDS = {'index': _index, 'search': _search, 'list': _list, 'delete': _delete, 'eval': _eval}


def main(argv: list[str] | None = None) -> int:
    """Run the CLI: 0 on success, 1 on a user error (one line on stderr), 2 on bad usage."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(name)s: %(message)s')
    try:
        return COMMANDS[args.command](args)
    except VcedError as e:
        print(f'error: {one_line(str(e))}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
