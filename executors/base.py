"""Jina-style executor base: methods marked with @requests(on=...) handle an endpoint."""
import inspect
import typing
from typing import Callable


def requests(on: str | list[str]) -> Callable:
    """Mark an executor method as a handler of one or more endpoints.

    A handler is `def f(self, docs: DocList[SomeDoc], parameters: dict) -> DocList` (parameters
    optional). Annotating `docs` makes it handle only DocLists of that document type, so one
    endpoint can have a handler for videos and another for queries.
    """
    endpoints = [on] if isinstance(on, str) else list(on)

    def mark(method: Callable) -> Callable:
        method._endpoints = endpoints
        return method

    return mark


class Executor:
    """A pipeline stage. Docs for an endpoint (or a document type) it has no handler for pass on unchanged.

    `stores` is True for an executor that writes the library: under Ray it runs in the process that
    owns the storage, and every executor before it runs on the workers.
    `background` is True for a stage whose work can wait its turn for the CPU: in a streaming Flow its
    thread, and the threads and processes that thread starts, run at lower priority, so a stage that
    cannot be split up (speech recognition) keeps the cores it needs while the others fill the gaps, and
    searches served beside an index job come first.
    """

    stores = False
    background = False
    nested_overrides: dict[str, tuple[str, str]] = {}  # a Flow override that sets an option nested in a block

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._handlers: dict[str, list[Handler]] = {}
        seen = set()
        for klass in cls.__mro__:  # most derived first: an overriding method replaces its parent's
            for name, member in vars(klass).items():
                if name in seen:
                    continue
                seen.add(name)
                for endpoint in getattr(member, '_endpoints', ()):
                    cls._handlers.setdefault(endpoint, []).append(Handler(member))

    def handles(self, endpoint: str) -> bool:
        return endpoint in self._handlers

    def handle(self, endpoint: str, docs, parameters: dict):
        """Run this executor's handler of `endpoint` for the type of `docs`; else return docs unchanged."""
        for handler in self._handlers.get(endpoint, ()):
            if handler.doc_type is None or getattr(docs, 'doc_type', None) is handler.doc_type:
                return handler(self, docs, parameters)
        return docs

    def close(self) -> None:
        """Release resources and persist state."""


class Handler:
    """A handler method with what its signature says, read once: its document type and whether it takes parameters."""

    def __init__(self, method: Callable):
        self.method = method
        self.doc_type = _annotated_doc_type(method)
        self.takes_parameters = 'parameters' in inspect.signature(method).parameters

    def __call__(self, executor: 'Executor', docs, parameters: dict):
        if self.takes_parameters:
            return self.method(executor, docs, parameters=parameters)
        return self.method(executor, docs)


def _annotated_doc_type(method: Callable) -> type | None:
    """The document type of a handler's `docs: DocList[T]` annotation, or None when unannotated."""
    annotation = typing.get_type_hints(method).get('docs')
    return getattr(annotation, 'doc_type', None)
