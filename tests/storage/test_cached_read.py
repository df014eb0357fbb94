"""CachedRead: a training run reads each crop from storage once while it fits the budget."""

from __future__ import annotations

import pickle

from modeling.ml.data import CachedRead

SIZES = {"a": 40, "b": 40, "c": 40, "huge": 500}


class CountingRead:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, key: str) -> bytes:
        self.calls.append(key)
        return bytes(SIZES[key])


def test_a_crop_read_again_comes_from_memory():
    read = CountingRead()
    cached = CachedRead(read, max_bytes=100)
    assert cached("a") == cached("a") == bytes(40)
    assert read.calls == ["a"]


def test_the_least_recently_used_crop_leaves_first_when_the_budget_is_full():
    read = CountingRead()
    cached = CachedRead(read, max_bytes=100)
    cached("a"), cached("b"), cached("a"), cached("c")  # 120 bytes: "b" is the oldest use
    assert cached.size == 80 and list(cached.kept) == ["a", "c"]
    cached("a"), cached("c"), cached("b")
    assert read.calls == ["a", "b", "c", "b"]


def test_a_crop_larger_than_the_budget_is_read_but_not_kept():
    read = CountingRead()
    cached = CachedRead(read, max_bytes=100)
    cached("a")
    assert cached("huge") == bytes(500) and list(cached.kept) == ["a"]


def test_a_data_loader_worker_gets_an_empty_copy():
    cached = CachedRead(_module_read, max_bytes=100)
    cached("a")
    copy = pickle.loads(pickle.dumps(cached))
    assert copy.kept == {} and copy.max_bytes == 100 and copy("b") == bytes(40)


def _module_read(key: str) -> bytes:
    return bytes(SIZES[key])
