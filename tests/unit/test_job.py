"""Job classes: class keywords, their defaults and inheritance, and registration by name."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from pgqueue import DuplicateJobType, InvalidQueueName, InvalidResult, Job
from pgqueue.job import result_json
from pgqueue.registry import registry


class SendEmail(Job, queue="emails", max_retries=5, timeout=30):
    recipient: str

    async def handle(self) -> None: ...


class Plain(Job):
    async def handle(self) -> None: ...


class Renamed(Job, name="billing.charge"):
    async def handle(self) -> None: ...


class Receipt(BaseModel):
    total: int


class MakeReceipt(Job):
    def handle(self) -> Receipt:
        return Receipt(total=1)


class Count(Job):
    async def handle(self) -> int:
        return 1


class EmailBase(Job, queue="emails", max_retries=7, timeout=timedelta(minutes=2)):
    """A base with shared defaults and no handle(): not a runnable job type."""


class Welcome(EmailBase):
    async def handle(self) -> None: ...


class Urgent(EmailBase, queue="urgent"):
    async def handle(self) -> None: ...


def test_class_keywords_set_queue_max_retries_and_timeout() -> None:
    options = SendEmail.job_options

    assert (options.queue, options.max_retries, options.timeout) == (
        "emails",
        5,
        timedelta(seconds=30),
    )


def test_defaults_are_queue_default_and_the_workers_retry_policy() -> None:
    options = Plain.job_options

    assert (options.queue, options.timeout) == ("default", None)
    assert (options.max_retries, options.backoff) == (None, None)  # the worker decides
    assert (options.retry_on, options.give_up_on) == ((), ())


def test_default_registered_name_is_module_and_qualified_name() -> None:
    assert Plain.job_options.name == f"{__name__}.Plain"
    assert registry.get(f"{__name__}.Plain") is Plain


def test_nested_class_is_named_by_its_qualified_name() -> None:
    class Inner(Job):
        async def handle(self) -> None: ...

    expected = f"{__name__}.test_nested_class_is_named_by_its_qualified_name.<locals>.Inner"
    assert Inner.job_options.name == expected
    assert registry.get(expected) is Inner


def test_name_keyword_overrides_registered_name() -> None:
    assert Renamed.job_options.name == "billing.charge"
    assert registry.get("billing.charge") is Renamed
    assert registry.get(f"{__name__}.Renamed") is None


def test_subclass_inherits_keywords_of_its_base() -> None:
    options = Welcome.job_options

    assert (options.queue, options.max_retries, options.timeout) == (
        "emails",
        7,
        timedelta(minutes=2),
    )


def test_subclass_keyword_overrides_only_that_keyword() -> None:
    options = Urgent.job_options

    assert (options.queue, options.max_retries, options.timeout) == (
        "urgent",
        7,
        timedelta(minutes=2),
    )


def test_subclass_gets_its_own_name_not_its_bases() -> None:
    class Child(Renamed):
        pass

    assert Child.job_options.name.endswith(".Child")
    assert registry.get(Child.job_options.name) is Child
    assert registry.get("billing.charge") is Renamed


def test_base_class_without_handle_is_not_registered() -> None:
    assert registry.get(EmailBase.job_options.name) is None
    assert not registry.is_registered(EmailBase)
    assert registry.is_registered(Welcome)


def test_two_classes_claiming_one_name_raise_duplicate_job_type() -> None:
    class First(Job, name="tests.unit.duplicate"):
        async def handle(self) -> None: ...

    with pytest.raises(DuplicateJobType, match=r"'tests\.unit\.duplicate'.*First.*name="):

        class Second(Job, name="tests.unit.duplicate"):
            async def handle(self) -> None: ...

    assert registry.get("tests.unit.duplicate") is First


def test_redefining_the_same_class_replaces_it_instead_of_raising() -> None:
    def define() -> type[Job]:
        class Reloaded(Job):
            async def handle(self) -> None: ...

        return Reloaded

    first, second = define(), define()

    assert first is not second
    assert registry.get(second.job_options.name) is second


@pytest.mark.parametrize("name", ["has space", "", "q" * 64, "semi;colon"])
def test_invalid_queue_keyword_raises_invalid_queue_name(name: str) -> None:
    with pytest.raises(InvalidQueueName, match="is invalid: use 1 to 63 letters"):

        class BadQueue(Job, queue=name):
            async def handle(self) -> None: ...


@pytest.mark.parametrize("max_retries", [-1, 32767, 2**70, math.nan, True])
def test_max_retries_keyword_out_of_range_raises_value_error(max_retries: Any) -> None:
    with pytest.raises(ValueError, match="max_retries must be an int from 0 to 32766, got "):

        class Negative(Job, max_retries=max_retries):
            async def handle(self) -> None: ...


@pytest.mark.parametrize(
    ("keyword", "value", "message"),
    [
        ("timeout", math.inf, "timeout must be a finite number of seconds, got inf"),
        ("timeout", math.nan, "timeout must be a finite number of seconds, got nan"),
        ("timeout", 1e300, "timeout must be at most a century (36525 days), got 1e+300"),
        ("timeout", timedelta.max, "timeout must be at most a century"),
        ("backoff", math.inf, "backoff must be a finite number of seconds, got inf"),
        ("backoff", math.nan, "backoff must be a finite number of seconds, got nan"),
        ("backoff", 10**30, "backoff must be at most a century"),
    ],
)
def test_infinite_nan_or_huge_durations_in_class_keywords_raise_value_error(
    keyword: str, value: object, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):

        class Endless(Job, **{keyword: value}):  # type: ignore[misc]
            async def handle(self) -> None: ...


def test_negative_timeout_keyword_raises_value_error() -> None:
    with pytest.raises(ValueError, match="timeout must not be negative"):

        class Negative(Job, timeout=-1):
            async def handle(self) -> None: ...


def test_result_adapter_is_none_when_handle_returns_none() -> None:
    assert SendEmail.result_adapter() is None


def test_result_adapter_validates_declared_return_type() -> None:
    adapter = MakeReceipt.result_adapter()

    assert adapter is not None
    assert adapter.validate_python({"total": 3}) == Receipt(total=3)
    assert Count.result_adapter() is not None


class Untyped(Job):
    def handle(self):  # type: ignore[no-untyped-def]
        return None


class Lists(Job):
    def handle(self) -> dict[str, list[int]]:
        return {}


def test_result_json_validates_laxly_as_readers_load_it() -> None:
    assert result_json(Count, "5") == "5"
    assert result_json(MakeReceipt, {"total": "3"}) == '{"total":3}'
    assert result_json(Untyped, ["a", 1]) == '["a",1]'  # no annotation: nothing to check
    assert result_json(SendEmail, "ignored") is None  # -> None: nothing stored


@pytest.mark.parametrize(
    ("cls", "returned", "message"),
    [
        (
            Count,
            "x",
            "Count.handle() is declared to return int but returned 'x' (str): Input should be a "
            "valid integer, unable to parse string as an integer",
        ),
        (
            MakeReceipt,
            {"total": 1.5},
            "MakeReceipt.handle() is declared to return Receipt but returned {'total': 1.5} "
            "(dict): total: Input should be a valid integer, got a number with a fractional part",
        ),
        (
            Lists,
            {"a": [1, "b"]},
            "Lists.handle() is declared to return dict[str, list[int]] but returned "
            "{'a': [1, 'b']} (dict): a.1: Input should be a valid integer",
        ),
        (Count, "y" * 500, f"but returned '{'y' * 196}... (str): Input should be"),
    ],
)
def test_result_json_names_the_declared_type_and_what_was_returned(
    cls: type[Job], returned: object, message: str
) -> None:
    with pytest.raises(InvalidResult) as raised:
        result_json(cls, returned)

    assert message in str(raised.value)


def test_context_outside_a_worker_raises() -> None:
    with pytest.raises(RuntimeError, match="not running in a worker"):
        _ = SendEmail(recipient="a@example.com").context
