"""A supervisor running given DAGs for one measurement, in a temporary folder of its own.

Usage::

    with running([dag], workers=1) as supervisor:
        ...                                  # measure; the supervisor shuts down on leaving
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from supervision.config import ServerConfig
from supervisor import Supervisor


@contextlib.contextmanager
def running(dags: list[dict[str, Any]], workers: int = 1) -> Iterator[Supervisor]:
    """Write ``dags`` to a temporary folder and serve them on ``workers`` processes until the block ends.
    Raises RuntimeError, listing the problems, when a DAG is invalid."""
    with tempfile.TemporaryDirectory(prefix="dagserver-bench-") as tmp:
        for dag in dags:
            (Path(tmp) / f"{dag['name']}.json").write_text(json.dumps(dag))
        supervisor = Supervisor(ServerConfig(workers=workers, dags=(tmp,), state_dir=str(Path(tmp) / "state")),
                                log_level="WARNING")
        supervisor.load()
        if supervisor.problems:
            raise RuntimeError("bench DAGs are invalid:\n" + "\n".join(supervisor.problems))
        supervisor.start()
        try:
            yield supervisor
        finally:
            supervisor.shutdown()
