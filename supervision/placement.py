"""Where each DAG runs (SPEC §5): pins first, mem-linked DAGs together, replicas apart, then least loaded.

``mem://`` queues and topics live inside one process, so DAGs that share one must share
a worker, and so do the replicas of a DAG that uses one. The replicas of any other DAG go
to distinct workers while there are enough of them (a pin places its first replica).
Placement is a pure function, tested without processes.

Usage::

    plan = place_dags(dags, workers=2)
    plan.assignment   # {"prices": 0, "feed": 0, "clock": 1}   (the first replica's worker)
    plan.replicas     # {"prices": [0], "feed": [0], "clock": [1], "orders": [0, 1]}
    plan.problems     # ["dag 'x' pins worker 5 but there are 2 workers"]
"""

from __future__ import annotations

from dataclasses import dataclass, field

from adapters.base import parse_uri
from adapters.builtin.mem import mem_target
from graphs.model import DagModel


@dataclass
class Placement:
    assignment: dict[str, int] = field(default_factory=dict)  # DAG -> the worker of its first replica
    replicas: dict[str, list[int]] = field(default_factory=dict)  # DAG -> the worker of each replica
    problems: list[str] = field(default_factory=list)

    def put(self, dag: DagModel, workers: list[int]) -> None:
        self.assignment[dag.name], self.replicas[dag.name] = workers[0], workers


def mem_endpoints(dag: DagModel) -> set[str]:
    """The ``mem://`` queues and topics a DAG reads or writes (``queue/NAME``)."""
    uris = [s.source for s in dag.subscribers.values()]
    uris += [p.destination for p in dag.publishers.values()]
    if dag.dead_letter:
        uris.append(dag.dead_letter)
    parsed = [parse_uri(uri) for uri in uris]
    return {"/".join(mem_target(u)) for u in parsed if u.scheme == "mem"}


def linked_groups(dags: list[DagModel]) -> list[list[DagModel]]:
    """DAGs connected through shared mem endpoints, each group in input order."""
    parent = {d.name: d.name for d in dags}

    def find(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    owner: dict[str, str] = {}
    for dag in dags:
        for endpoint in mem_endpoints(dag):
            if endpoint in owner:
                parent[find(dag.name)] = find(owner[endpoint])
            else:
                owner[endpoint] = dag.name
    groups: dict[str, list[DagModel]] = {}
    for dag in dags:
        groups.setdefault(find(dag.name), []).append(dag)
    return list(groups.values())


def place_dags(dags: list[DagModel], workers: int) -> Placement:
    plan = Placement()
    load = [0] * workers
    unpinned: list[list[DagModel]] = []
    for group in linked_groups(dags):
        pins = {d.worker for d in group if d.worker is not None}
        bad = [d for d in group if d.worker is not None and d.worker >= workers]
        if bad:
            for d in bad:
                plan.problems.append(f"dag {d.name!r} pins worker {d.worker} but there are {workers} workers "
                                     f"(0..{workers - 1}); it is not started")
            bad_names = {d.name for d in bad}
            for d in group:
                if d.name not in bad_names:
                    plan.problems.append(f"dag {d.name!r} shares mem:// endpoints with "
                                         f"{', '.join(repr(b.name) for b in bad)}, which cannot be placed; "
                                         f"it is not started")
            continue
        if len(pins) > 1:
            names = ", ".join(f"{d.name!r}→{d.worker}" for d in group if d.worker is not None)
            group_names = ", ".join(repr(d.name) for d in group)
            plan.problems.append(f"dags sharing mem:// endpoints must run on one worker, but they pin "
                                 f"different ones ({names}); none of {group_names} is started")
            continue
        if pins:
            _place_group(plan, group, pins.pop(), load)
        else:
            unpinned.append(group)
    for group in sorted(unpinned, key=lambda g: sum(d.replicas for d in g), reverse=True):
        _place_group(plan, group, None, load)
    return plan


def _place_group(plan: Placement, group: list[DagModel], pin: int | None, load: list[int]) -> None:
    """Everything of a mem-linked group on one worker; a lone DAG's replicas on distinct ones."""
    def least_loaded(avoid: set[int]) -> int:
        free = [w for w in range(len(load)) if w not in avoid] or list(range(len(load)))
        return min(free, key=lambda w: (load[w], w))

    if len(group) > 1 or mem_endpoints(group[0]):
        worker = least_loaded(set()) if pin is None else pin
        for dag in group:
            plan.put(dag, [worker] * dag.replicas)
            load[worker] += dag.replicas
        return
    dag = group[0]
    chosen: list[int] = []
    for index in range(dag.replicas):
        worker = pin if index == 0 and pin is not None else least_loaded(set(chosen))
        chosen.append(worker)
        load[worker] += 1
    plan.put(dag, chosen)
