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
    """A pipeline stage. Docs for an endpoint (or a document type) it has no handler for pass on unchanged."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._handlers: dict[str, list[tuple[Callable, type | None]]] = {}
        for klass in reversed(cls.__mro__):
            for member in vars(klass).values():
                for endpoint in getattr(member, '_endpoints', ()):
                    cls._handlers.setdefault(endpoint, []).append((member, _annotated_doc_type(member)))

    def handles(self, endpoint: str) -> bool:
        return endpoint in self._handlers

    def handle(self, endpoint: str, docs, parameters: dict):
        """Run this executor's handler of `endpoint` for the type of `docs`; else return docs unchanged."""
        for method, doc_type in self._handlers.get(endpoint, ()):
            if doc_type is not None and getattr(docs, 'doc_type', None) is not doc_type:
                continue
            if 'parameters' in inspect.signature(method).parameters:
                return method(self, docs, parameters=parameters)
            return method(self, docs)
        return docs

    def close(self) -> None:
        """Release resources and persist state."""


def _annotated_doc_type(method: Callable) -> type | None:
    """The document type of a handler's `docs: DocList[T]` annotation, or None when unannotated."""
    annotation = typing.get_type_hints(method).get('docs')
    return getattr(annotation, 'doc_type', None)
