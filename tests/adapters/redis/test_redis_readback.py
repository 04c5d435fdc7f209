"""Dead letters kept in a Redis list or stream are read back (not consumed) and redriven (SPEC §13)."""

from __future__ import annotations

import pytest

from actors.redrive import list_dead_letters, redrive
from actors.runtime import DagRuntime
from adapters.builtin.mem import mem_put
from tests.actors.test_redrive import deep_error_dag
from tests.support.redis_service import RedisKeys
from tests.support.waiting import wait_until


@pytest.mark.parametrize("kind", ["list", "stream"])
def test_dead_letters_kept_in_redis_are_read_back_and_redriven(kind: str, redis_keys: RedisKeys) -> None:
    where = f"redis://{redis_keys.host}:{redis_keys.port}/{kind}/{redis_keys.name('dead')}"
    runtime = DagRuntime(deep_error_dag(f"redis_{kind}", where))
    runtime.start()
    try:
        mem_put(f"redis_{kind}_in", [{"id": 1, "boom": True}, {"id": 2}, {"id": 3, "boom": True}])
        assert wait_until(lambda: len(list_dead_letters(runtime)) == 2, timeout=20)
        found = list_dead_letters(runtime)
        assert [(d["subscriber"], d["record"]) for d in found] == [("in", {"id": 1, "boom": True}),
                                                                   ("in", {"id": 3, "boom": True})]
        if kind == "list":
            assert [d["id"] for d in found] == ["0", "1"]
        else:
            assert all("-" in d["id"] for d in found)  # stream entry ids
        assert redrive(runtime, ids=[found[0]["id"]])["redriven"] == 1
        assert wait_until(lambda: len(list_dead_letters(runtime)) == 3, timeout=20)
        assert len(list_dead_letters(runtime)) == 3  # reading never took any away
    finally:
        runtime.stop(timeout=10)
