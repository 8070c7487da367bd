"""The public API is narrow, sorted, and every name in it exists."""

from __future__ import annotations

import pgqueue


def test_all_is_sorted() -> None:
    assert pgqueue.__all__ == sorted(pgqueue.__all__)


def test_all_has_no_duplicates() -> None:
    assert len(set(pgqueue.__all__)) == len(pgqueue.__all__)


def test_every_name_in_all_exists() -> None:
    missing = [name for name in pgqueue.__all__ if not hasattr(pgqueue, name)]

    assert missing == []


def test_every_public_class_is_exported() -> None:
    public = {name for name in vars(pgqueue) if not name.startswith("_")}

    assert {name for name in public if isinstance(getattr(pgqueue, name), type)} <= set(
        pgqueue.__all__
    )
