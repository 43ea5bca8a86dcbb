"""The Flow: flow.yml's executors, built once, and the documents of each endpoint routed through them in order."""
import inspect
import logging
import os
import queue
import re
import sys
import threading
from pathlib import Path
from typing import Iterable, Iterator

import yaml

from executors.base import Executor
from executors.documents import DocList, VideoDoc
from executors.errors import ConfigError
from executors.registry import executor_class

log = logging.getLogger(__name__)

SAFE_LOADER = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)  # libyaml's when PyYAML has it: 15x faster
BACKGROUND_NICENESS = 10  # a background stage's CPU share against a busy normal thread: about a tenth


class Flow:
    """Builds flow.yml's executors once and routes each endpoint's docs through them in order.

    flow.yml has a top-level `with:` (parameters given to every executor that takes them, such as
    `workspace` and `model`) and `executors:`, a list of `{uses: ClassName, with: {...}}`.
    `overrides` replace the top-level parameters (the CLI's --workspace and --model); an executor
    that refuses an override's value is reported as `<name> '<value>' (<origin>)`, not as flow.yml's line.
    """

    def __init__(self, path: str | Path | None = None, origin: str = 'an override', **overrides):
        self.path = Path(path or default_flow())
        self.executors: list[Executor] = []
        self.arguments: dict[str, dict] = {}  # each executor's keyword arguments, by its flow.yml `uses`
        self.stages: list[tuple[str, dict]] = []  # (uses, keyword arguments) of each executor, in order
        overrides = {k: v for k, v in overrides.items() if v is not None}
        root, config = _parse(self.path, _read(self.path))
        # what decides the executors' behaviour: the top-level parameters as overridden, and each executor's
        self.settings = {'with': {**(config.get('with') or {}), **overrides}, 'executors': config['executors']}
        try:
            for spec in _executor_specs(self.path, root, config, self.settings['with'], overrides, origin):
                executor, self.arguments[spec['uses']] = _build_executor(self.path, spec)
                self.executors.append(executor)
                self.stages.append((spec['uses'], self.arguments[spec['uses']]))
        except BaseException:
            self.close()
            raise

    @classmethod
    def of(cls, stages: list[tuple[str, dict]], path: str | Path = 'flow.yml') -> 'Flow':
        """A Flow of the executors `stages` names (flow.yml `uses`, keyword arguments), such as part of
        another Flow's `stages` rebuilt in a Ray worker; `path` names the flow file in errors."""
        flow = cls.__new__(cls)
        flow.path, flow.executors, flow.stages = Path(path), [], list(stages)
        flow.arguments = dict(flow.stages)
        flow.settings = {'with': {}, 'executors': [{'uses': uses, 'with': kwargs} for uses, kwargs in flow.stages]}
        try:
            for uses, kwargs in flow.stages:
                flow.executors.append(executor_class(uses)(**kwargs))
        except BaseException:
            flow.close()
            raise
        return flow

    def post(self, endpoint: str, docs: DocList | None = None, parameters: dict | None = None,
             first: int = 0) -> DocList:
        """Run `endpoint` over `docs` through every executor from the `first`-th on, in this thread; return
        what the last one returns."""
        self._check(endpoint)
        return _run(self.executors[first:], endpoint, docs if docs is not None else DocList[VideoDoc](),
                    parameters or {})

    def storing(self) -> int:
        """The position of the first executor that stores (Executor.stores: the Indexer); ConfigError when none does."""
        for position, executor in enumerate(self.executors):
            if executor.stores:
                return position
        raise ConfigError(f'{self.path}: no executor stores what /index makes (add the Indexer)')

    def stream(self, endpoint: str, requests: Iterable[DocList], parameters: dict | None = None) -> Iterator[DocList]:
        """Run `endpoint` over each DocList of `requests`, yielding each result in order.

        Every executor runs in its own thread, handing its output to the next through a queue of
        one: while the Indexer stores video N, the encoder embeds N+1 and the loader decodes N+2
        (ffmpeg, CTranslate2 and torch release the GIL). A handler may return an iterator of
        DocLists (a long video in chunks); each chunk travels on as it comes.
        """
        self._check(endpoint)
        return _Pipeline(self.executors, endpoint, parameters or {}).run(requests)

    def _check(self, endpoint: str) -> None:
        if not any(e.handles(endpoint) for e in self.executors):
            handled = sorted({p for e in self.executors for p in e._handlers})
            raise ConfigError(f"unknown endpoint '{endpoint}': {self.path} handles {', '.join(handled)}")

    def close(self) -> None:
        """Close every executor (persisting its state), last first."""
        for executor in reversed(self.executors):
            executor.close()
        self.executors = []

    def __enter__(self) -> 'Flow':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def default_flow() -> Path:
    """flow.yml of the current folder when it has one, else the repository's (beside library/: an editable
    install's, so `vced` and the Python API work from any folder)."""
    here = Path('flow.yml')
    installed = Path(__file__).resolve().parents[1] / 'flow.yml'
    return installed if not here.is_file() and installed.is_file() else here


def read_settings(path: str | Path | None = None, **overrides) -> dict:
    """The settings a Flow of `path` would have (its top-level `with:` as overridden, and each executor's
    `uses` and `with`), read without building anything."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    path = Path(path or default_flow())
    config = _parse(path, _read(path))[1]
    return {'with': {**(config.get('with') or {}), **overrides}, 'executors': config['executors']}


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding='utf-8')
    except OSError as e:
        raise ConfigError(f'{path}: cannot read the flow file ({e.strerror})') from e


def _parse(path: Path, text: str) -> tuple[yaml.Node, dict]:
    """flow.yml as YAML nodes (for line numbers) and as data, checked to have executors."""
    try:
        root = yaml.compose(text, Loader=SAFE_LOADER)
        config = yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as e:
        raise ConfigError(f'{path}: not valid YAML: {e}'.replace('\n', ' ')) from e
    if not isinstance(config, dict) or not isinstance(config.get('executors'), list) or not config['executors']:
        raise ConfigError(f"{path}: needs an 'executors:' list with at least one executor")
    return root, config


def _executor_specs(path: Path, root: yaml.Node, config: dict, shared: dict, overrides: dict,
                    origin: str) -> Iterator[dict]:
    """Each executor's class name, keyword arguments and the flow.yml lines they came from."""
    root_nodes = {k.value: v for k, v in root.value}
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
            if key_node.value == 'with':
                param_lines = _key_lines(value_node)
        yield {'uses': entry['uses'], 'line': line, 'params': params, 'param_lines': param_lines,
               'shared': shared, 'overrides': overrides, 'origin': origin}


def _key_lines(node: yaml.Node, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], int]:
    """The line of each key of a mapping node and of the mappings nested in it, by its path of keys."""
    lines = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            lines[(*prefix, str(key.value))] = key.start_mark.line + 1
            lines.update(_key_lines(value, (*prefix, str(key.value))))
    return lines


def _arguments(cls: type, spec: dict, accepted: list[str]) -> tuple[dict, dict[tuple[str, ...], str]]:
    """An executor's keyword arguments: flow.yml's top-level `with:` it takes, its own `with:`, then the
    overrides it takes, some of which land in a nested option (Executor.nested_overrides); and the
    paths of the options the overrides set, with the override that set each."""
    kwargs = {k: v for k, v in spec['shared'].items() if k in accepted}
    kwargs.update(spec['params'])
    overridden = {}
    for key, value in spec['overrides'].items():
        if key in accepted:
            kwargs[key] = value
            overridden[(key,)] = key
        elif key in cls.nested_overrides:
            block, option = cls.nested_overrides[key]
            kwargs[block] = {**(kwargs.get(block) or {}), option: value}
            overridden[(block, option)] = key
    return kwargs, overridden


def _build_executor(path: Path, spec: dict) -> tuple[Executor, dict]:
    line = spec['line']
    try:
        cls = executor_class(spec['uses'])
    except LookupError as e:
        raise ConfigError(f"{path}:{line}: {e.args[0]}") from e
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != 'self']
    for key in spec['params']:
        if key not in accepted:
            where = spec['param_lines'].get((key,), line)
            raise ConfigError(f"{path}:{where}: {spec['uses']} has no parameter '{key}' (it takes {', '.join(accepted)})")
    kwargs, overridden = _arguments(cls, spec, accepted)
    try:
        return cls(**kwargs), kwargs
    except (ConfigError, TypeError, ValueError) as e:
        key = getattr(e, 'key', ())
        raise ConfigError(f"{_blamed(path, spec, overridden, key, str(e))}: {spec['uses']}: {e}", key=key) from e


def _blamed(path: Path, spec: dict, overridden: dict[tuple[str, ...], str], key: tuple[str, ...], message: str) -> str:
    """Where a refused setting came from: the override that set the option at fault (`key`; without one, the
    override the message names), as `<name> '<value>' (<origin>)`; else the option's line in flow.yml."""
    culprits = [overridden[key]] if key in overridden else [] if key else overridden.values()
    for name in culprits:
        value = spec['overrides'][name]
        if key or re.search(rf'\b{re.escape(name)}\b', message) or len(str(value)) > 2 and str(value) in message:
            return f"{name} '{value}' ({spec['origin']})"
    return f"{path}:{spec['param_lines'].get(key, spec['line'])}"


def _run(executors: list[Executor], endpoint: str, docs: DocList, parameters: dict) -> DocList:
    """`docs` through `executors` in order; the chunks of a handler that returns several run on one by one."""
    for i, executor in enumerate(executors):
        result = executor.handle(endpoint, docs, parameters)
        if not isinstance(result, DocList):
            outputs = [_run(executors[i + 1:], endpoint, chunk, parameters) for chunk in result]
            return outputs[0].__class__([doc for output in outputs for doc in output]) if outputs else docs[:0]
        docs = result
    return docs


_DONE = object()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


class _Pipeline:
    """One thread per executor, joined by queues of one; stops every thread when the consumer stops."""

    def __init__(self, executors: list[Executor], endpoint: str, parameters: dict):
        self.executors, self.endpoint, self.parameters = executors, endpoint, parameters
        self.queues = [queue.Queue(maxsize=1) for _ in range(len(executors) + 1)]
        self.stopped = threading.Event()

    def run(self, requests: Iterable[DocList]) -> Iterator[DocList]:
        threads = [threading.Thread(target=self._feed, args=(iter(requests),), daemon=True, name='flow-feed')]
        threads += [threading.Thread(target=self._stage, args=(i,), daemon=True, name=f'flow-{type(e).__name__}')
                    for i, e in enumerate(self.executors)]
        for thread in threads:
            thread.start()
        try:
            while (item := self.queues[-1].get()) is not _DONE:
                if isinstance(item, _Failure):
                    raise item.error
                yield item
        finally:
            self.stopped.set()
            for q in self.queues:  # unblock producers waiting on a full queue
                while not q.empty():
                    q.get_nowait()
            for thread in threads:
                thread.join()

    def _put(self, index: int, item) -> bool:
        while not self.stopped.is_set():
            try:
                self.queues[index].put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _feed(self, requests: Iterator[DocList]) -> None:
        try:
            for docs in requests:
                if not self._put(0, docs):
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which raises it
            self._put(0, _Failure(e))
            return
        self._put(0, _DONE)

    def _stage(self, index: int) -> None:
        executor = self.executors[index]
        if executor.background:
            lower_thread_priority()
        while True:
            try:
                item = self.queues[index].get(timeout=0.1)
            except queue.Empty:
                if self.stopped.is_set():
                    return
                continue
            if item is _DONE or isinstance(item, _Failure):
                self._put(index + 1, item)
                return
            result = None
            try:
                result = executor.handle(self.endpoint, item, self.parameters)
                for chunk in [result] if isinstance(result, DocList) else result:
                    if not self._put(index + 1, chunk):
                        return
            except BaseException as e:  # noqa: BLE001 - handed to the consumer, which raises it
                self._put(index + 1, _Failure(e))
                return
            finally:
                if hasattr(result, 'close'):  # a chunked handler stopped early: its ffmpeg and staging go now
                    result.close()


def lower_thread_priority() -> None:
    """Give the calling thread, and what it starts from now on (threads, ffmpeg), BACKGROUND_NICENESS more
    niceness. Linux keeps a niceness per thread; elsewhere, or where the system refuses, nothing changes."""
    if sys.platform != 'linux':
        return
    thread = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + BACKGROUND_NICENESS)
    except OSError as e:
        log.debug('cannot lower the priority of thread %d: %s', thread, e)
