"""Job type name -> Job class, the map a worker uses to turn a row back into a job."""

from __future__ import annotations

import difflib
import importlib
import os
import sys

from pgqueue.errors import ConfigurationError, DuplicateJobType, UnregisteredJob
from pgqueue.job import Job, on_job_type
from pgqueue.rows import Schedule

_NAMES_SHOWN = 12  # registered names an error lists


class Registry:
    """Holds every runnable Job class under its registered name, and the schedules declared
    with ``@schedule``."""

    def __init__(self) -> None:
        self._classes: dict[str, type[Job]] = {}
        self._schedules: dict[str, Schedule] = {}

    def register(self, cls: type[Job]) -> None:
        name = cls.job_options.name
        existing = self._classes.get(name)
        redefined = existing is not None and (existing.__module__, existing.__qualname__) == (
            cls.__module__,
            cls.__qualname__,
        )
        if existing is not None and not redefined:
            raise DuplicateJobType(
                f"job type {name!r} is already registered by "
                f"{existing.__module__}.{existing.__qualname__}: pass name='...' to tell them apart"
            )
        self._classes[name] = cls  # a redefinition (module reloaded) replaces the old class

    def get(self, name: str) -> type[Job] | None:
        return self._classes.get(name)

    def require(self, name: str, *, fix: str) -> type[Job]:
        """The class registered as ``name``, else UnregisteredJob naming the closest and the
        registered names, then ``fix``."""
        cls = self._classes.get(name)
        if cls is not None:
            return cls
        names = self.names()
        close = difflib.get_close_matches(name, names, n=1)
        shown = ", ".join(names[:_NAMES_SHOWN]) or "none"
        if len(names) > _NAMES_SHOWN:
            shown += f" and {len(names) - _NAMES_SHOWN} more"
        guess = f"did you mean {close[0]!r}? " if close else ""
        raise UnregisteredJob(
            f"no job class is registered as {name!r} ({guess}registered: {shown}): {fix}"
        )

    def is_registered(self, cls: type[object]) -> bool:
        name = getattr(getattr(cls, "job_options", None), "name", None)
        return name is not None and self._classes.get(name) is cls

    def names(self) -> list[str]:
        return sorted(self._classes)

    def classes(self) -> list[type[Job]]:
        return [self._classes[name] for name in self.names()]

    def add_schedule(self, schedule: Schedule) -> None:
        existing = self._schedules.get(schedule.name)
        if existing is not None and existing.job_type != schedule.job_type:
            raise ConfigurationError(
                f"schedule {schedule.name!r} is already declared for {existing.job_type}: "
                "pass name='...' to tell them apart"
            )
        self._schedules[schedule.name] = schedule  # a redefinition (module reloaded) replaces it

    def schedules(self) -> list[Schedule]:
        return [self._schedules[name] for name in sorted(self._schedules)]


registry = Registry()
on_job_type(registry.register)  # every Job class with handle() registers itself as defined


def load_app(module: str) -> None:
    """Import ``module`` (dotted path) so the Job classes it defines register themselves."""
    if os.getcwd() not in sys.path:  # `pgqueue work` is run from the project's directory
        sys.path.insert(0, os.getcwd())
    try:
        importlib.import_module(module)
    except ImportError as error:
        raise ConfigurationError(f"cannot import the app module {module!r}: {error}") from error
