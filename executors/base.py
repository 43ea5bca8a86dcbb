"""Jina-style executor base: methods marked with @requests(on=...) handle an endpoint."""
import inspect
from typing import Callable

ENDPOINTS = ('/index', '/search', '/list', '/delete')


def requests(on: str | list[str]) -> Callable:
    """Mark an executor method as the handler of one or more endpoints."""
    endpoints = [on] if isinstance(on, str) else list(on)

    def mark(method: Callable) -> Callable:
        method._endpoints = endpoints
        return method

    return mark


class Executor:
    """A pipeline stage. Handlers take (docs, parameters) and return the docs for the next stage."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._handlers = {}
        for klass in reversed(cls.__mro__):
            for name, member in vars(klass).items():
                for endpoint in getattr(member, '_endpoints', ()):
                    cls._handlers[endpoint] = name

    def handles(self, endpoint: str) -> bool:
        return endpoint in self._handlers

    def handle(self, endpoint: str, docs, parameters: dict):
        """Run this executor's handler of `endpoint`; docs pass on unchanged if it has none."""
        name = self._handlers.get(endpoint)
        if name is None:
            return docs
        method = getattr(self, name)
        if 'parameters' in inspect.signature(method).parameters:
            return method(docs, parameters=parameters)
        return method(docs)

    def close(self) -> None:
        """Release resources and persist state."""
