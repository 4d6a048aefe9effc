"""Counts in messages: ``1 bucket``, ``2 buckets``, never ``1 buckets``."""

from __future__ import annotations


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """``n`` and ``noun`` in its number: ``plural(1, "bucket")`` is ``1 bucket``, ``plural(2,
    "bucket")`` ``2 buckets``, ``plural(65536, "network")`` ``65,536 networks``; ``nouns``
    where the plural is not ``noun + "s"``."""
    return f"{n:,} {noun if n == 1 else nouns or noun + 's'}"
