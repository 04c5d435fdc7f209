"""One node's share of an epoch: the reference rules of SPEC §2, replayed per ``seq``.

A :class:`NodeLogic` holds a node's state (latest input and output, its parents'
latest outputs) and turns the changes its parents made in one epoch into the changes
it makes itself. It knows nothing of actors or encoding, so it is tested directly.

Usage::

    logic = NodeLogic(dag, "value", calculators, transformers, stats)
    changes, publications = logic.run_merge([[[0], [{"price": 2.0}]], [[], []]])
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from time import perf_counter
from typing import Any

from actors.messages import RUN_TICK, decode_records
from actors.state import NodeStates, many_of, run_many
from actors.stats import NodeStats
from actors.tap import tapped_calculator
from graphs.model import METRONOME_NODE, PUBLICATION_NODE, DagModel
from graphs.state import LateRecord, is_stateful, owner_of
from graphs.values import describe_error, nan_equal, not_a_map  # nan_equal: same_value(), inlined

Changes = list  # [seqs, outputs]: two parallel lists
ErrorSink = Callable[[str, str, Any, int], None]  # (node, message, input, seq of the ingress record)


class _EdgeFailure:
    """A parent's output that its edge's data_transformer could not transform."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


class NodeLogic:
    """Applies the reference rules for one node to whole epochs of changes."""

    def __init__(self, dag: DagModel, name: str, calculators: Mapping[str, Callable],
                 transformers: Mapping[str, Callable], stats: NodeStats,
                 on_error: ErrorSink | None = None, clock: Callable[[], float] = time.time) -> None:
        node = dag.nodes[name]
        self.name = name
        self.kind = node.type
        self.always = node.always
        self.publishes = node.type in (PUBLICATION_NODE, METRONOME_NODE) and bool(node.publishers)
        # Without a calculator a node passes its input on (NullCalculator semantics): the
        # copy the reference makes is unneeded here, msgpack already isolates every hop.
        self.calc: Callable = calculators[node.calculator] if node.calculator else _identity
        self.calc_name = node.calculator
        self.in_chain = tuple((t, transformers[t]) for t in node.input_transformers)
        self.out_chain = tuple((t, transformers[t]) for t in node.output_transformers)
        self.edges = dag.parents[name]
        self.edge_trans = tuple((e.data_transformer, transformers[e.data_transformer]) if e.data_transformer
                                else None for e in self.edges)
        # The hot path (run_plain): one parent or none, no transformer anywhere. When that parent
        # sends only outputs that differ from its previous one (it is neither `always` nor a
        # MetronomeNode), an input equal to the parent's latest output needs no comparison.
        # a stateful calculator computes on every record that reaches it: no input comparison (SPEC §11)
        self.stateful = is_stateful(owner_of(self.calc))
        self.plain = len(self.edges) <= 1 and not (self.in_chain or self.out_chain or any(self.edge_trans)
                                                   or self.stateful)
        parent = dag.nodes[self.edges[0].from_node] if len(self.edges) == 1 else None
        self.parent_distinct = parent is not None and not parent.always and parent.type != METRONOME_NODE
        self.fresh = False  # self.input is (==) the parent's latest output
        self.parent_out: list[Any] = [None] * len(self.edges)  # transformed, None when empty
        self.input: Any = {}  # as in the seed, a node starts with input {} and output {} (SPEC §2)
        self.output: Any = {}
        self.latest: Any = None  # MetronomeNode: latest record of its subscriber
        self.stats = stats
        self.times: list[float] = []  # this epoch's compute durations, one each (SPEC §8)
        self.on_error = on_error
        self.clock = clock
        self.states = NodeStates(name, self.calc, transformers, stats)  # snapshot()/restore() of its components
        # a stateful calculator offering calculate_many gets whole runs of inputs (actors/state.py run_many)
        self.many = many_of(self.calc) if self.stateful and not (self.in_chain or self.out_chain) else None
        self.seq = -1  # the seq being computed where a loop cannot say (errors read it: dead letters' record)
        self.tapped = False  # this epoch runs with the tap's calculator (see _tapped)

    # -- state --------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The node's checkpoint state; its components' snapshots under ``state`` (raises StateError)."""
        saved = {"input": self.input, "output": self.output, "latest": self.latest}
        if self.states:
            saved["state"] = self.states.snapshot()
        return saved

    def restore(self, state: Mapping[str, Any], parent_outputs: list[Any]) -> None:
        """Resume from a checkpoint: own state plus each edge's parent output."""
        self.input = state.get("input") or {}
        self.output = state.get("output") or {}
        self.latest = state.get("latest")
        self.fresh = False
        self.states.restore(state.get("state"))
        for i, output in enumerate(parent_outputs):
            self._set_parent(i, output)
        self.stats.input, self.stats.output = self.input, self.output

    # -- epochs ---------------------------------------------------------------------------------
    def run_root(self, runs: list[list]) -> tuple[Changes, Changes]:
        """A root's epoch (see :meth:`_run_root`); written down in the node's tap while one is open."""
        tap = self.stats.tap
        if tap.open and tap.still_open():
            return self._tapped(self._run_root, runs)
        return self._run_root(runs)

    def run_merge(self, parents: list[list], complete: bool = True) -> tuple[Changes, Changes]:
        """An inner node's epoch (see :meth:`_run_merge`); written down in the node's tap while one is open."""
        tap = self.stats.tap
        if tap.open and tap.still_open():
            return self._tapped(self._run_merge, parents, complete)
        return self._run_merge(parents, complete)

    def _tapped(self, run: Callable[..., tuple[Changes, Changes]], *args: Any) -> tuple[Changes, Changes]:
        """One epoch with every compute written to the tap: the very same loops, the plain one included,
        with the calculator wrapped to note each call (and ``tapped`` set, so the plain loop keeps
        ``self.seq`` at the record it takes, which the wrapper notes)."""
        found: list = []
        calc = self.calc
        self.calc, self.tapped = tapped_calculator(self, calc, found), True
        try:
            return run(*args)
        finally:
            self.calc, self.tapped = calc, False
            self.stats.tap.add(found, self.clock())

    def _run_root(self, runs: list[list]) -> tuple[Changes, Changes]:
        """A root's epoch: runs ``[first_seq, RUN_RECORDS, encoded records]`` or ``[seq, RUN_TICK, tick]``.

        For a MetronomeNode, records from its subscriber only update the latest record;
        a tick computes on that (or on the tick record) and always propagates.
        """
        seqs: list[int] = []
        outs: list[Any] = []
        step = self._step
        metronome = self.kind == METRONOME_NODE
        always = self.always
        for first, kind, payload in runs:
            if kind == RUN_TICK:
                self.seq = first
                out = step(first, self.latest if self.latest is not None else payload, False, True)
                if out is not None:
                    seqs.append(first)
                    outs.append(out)
                continue
            records = decode_records(payload)
            if metronome:
                if records:
                    self.latest = records[-1]
                continue
            if self.plain:
                self._run_plain(range(first, first + len(records)), records, seqs, outs, True)
                continue
            if self.many is not None and self.calc is self.many[0]:
                run_many(self, range(first, first + len(records)), records, seqs, outs)
                continue
            for seq, record in enumerate(records, first):
                self.seq = seq
                out = step(seq, record, False, always)
                if out is not None:
                    seqs.append(seq)
                    outs.append(out)
        self._account()
        return self._result(seqs, outs)

    def _run_merge(self, parents: list[list], complete: bool = True) -> tuple[Changes, Changes]:
        """An inner node's epoch: one ``[seqs, outputs]`` per incoming edge, in edge order.

        ``complete=False``: some of the parent's outputs were dropped on the way (msgpack could not
        carry them), so the parent's latest output may be one this node never saw: every input is
        compared this epoch, and the first of the next one.
        """
        seqs: list[int] = []
        outs: list[Any] = []
        always = self.always
        step = self._step
        if len(parents) == 1 and self.plain:
            p_seqs, p_outs = parents[0]
            if p_outs:
                self.parent_out[0] = p_outs[-1] or None
                self._run_plain(p_seqs, p_outs, seqs, outs, False, complete)
            if not complete:
                self.fresh = False
        elif len(parents) == 1 and self.many is not None and self.calc is self.many[0] and not self.edge_trans[0]:
            p_seqs, p_outs = parents[0]
            if p_outs:  # each input is the parent's output ({} for an empty one), as _merged() makes it
                self.parent_out[0] = p_outs[-1] or None
                run_many(self, p_seqs, [out or {} for out in p_outs], seqs, outs)
        elif len(parents) == 1:
            set_parent = self._set_parent
            for seq, output in zip(parents[0][0], parents[0][1], strict=True):
                self.seq = seq
                set_parent(0, output)
                merged = self._merged()
                if merged is not None:
                    out = step(seq, merged, True, always)
                    if out is not None:
                        seqs.append(seq)
                        outs.append(out)
        else:
            events = [(seq, i, out) for i, (p_seqs, p_outs) in enumerate(parents)
                      for seq, out in zip(p_seqs, p_outs, strict=True)]
            events.sort(key=_seq_of)
            n = len(events)
            k = 0
            while k < n:
                seq = self.seq = events[k][0]
                while k < n and events[k][0] == seq:  # every parent that changed at seq first
                    self._set_parent(events[k][1], events[k][2])
                    k += 1
                merged = self._merged()
                if merged is None:
                    continue
                out = step(seq, merged, True, always)
                if out is not None:
                    seqs.append(seq)
                    outs.append(out)
        self._account()
        return self._result(seqs, outs)

    def _run_plain(self, in_seqs: list[int] | range, values: list[Any], seqs: list[int], outs: list[Any],
                   root: bool, complete: bool = True) -> None:
        """Rules 1-4 for a plain node (see ``plain``) over one run of inputs, appending what it propagates.

        The same rules as :meth:`_step` after :meth:`_set_parent` and :meth:`_merged`, in one loop:
        this is where a record spends most of its time in a node.
        """
        calc, times, always, name = self.calc, self.times, self.always, self.calc_name
        identity = calc is _identity  # a tapped identity is wrapped: computed and compared as any other
        if self.tapped:  # the same loop, over seqs that keep self.seq at the record being taken
            in_seqs = _seqs_noted(self, in_seqs)
        trusted = self.parent_distinct and not root and complete
        inp, cur, fresh = self.input, self.output, self.fresh
        clock = perf_counter
        for seq, value in zip(in_seqs, values, strict=True):
            if not root:  # an empty input ({}) is compared like any other (SPEC §2)
                if not always and not (fresh and trusted) and (value == inp or nan_equal(value, inp)):
                    fresh = True
                    continue
                fresh = True
            settled = identity and cur is inp and not root  # an identity node's output is its input
            inp = value
            if identity:  # passing the input on takes no measurable time: observed as 0 s
                times.append(0.0)
                out = value
            else:
                started = clock()
                try:
                    out = calc(value)
                    if out is not None and type(out) is not dict and not isinstance(out, dict):
                        raise not_a_map("calculator", name, out)
                except (Exception, SystemExit) as exc:  # user code: sys.exit() is an error too, never an exit
                    times.append(clock() - started)
                    self.seq = seq
                    self.record_error(describe_error(exc), value)
                    continue
                times.append(clock() - started)
            if out is None:
                continue
            # settled: the input just differed from the previous one, which is the previous output
            if not always and not settled and (out == cur or nan_equal(out, cur)):
                continue
            cur = out
            seqs.append(seq)
            outs.append(out)
        self.input, self.output, self.fresh = inp, cur, fresh

    def _result(self, seqs: list[int], outs: list[Any]) -> tuple[Changes, Changes]:
        changes = [seqs, outs]
        if not self.publishes:
            return changes, [[], []]
        if all(outs):
            return changes, changes
        kept = [(seq, out) for seq, out in zip(seqs, outs, strict=True) if out]  # {} is never published
        return changes, [[seq for seq, _ in kept], [out for _, out in kept]]

    # -- the rules ------------------------------------------------------------------------------
    def _set_parent(self, i: int, output: Any) -> None:
        edge = self.edge_trans[i]
        if output and edge is not None:
            name, trans = edge
            try:
                output = trans(output)
                if output is not None and not isinstance(output, dict):
                    raise not_a_map("transformer", name, output)
            except (Exception, SystemExit) as exc:  # user code: sys.exit() is an error too, never an exit
                output = _EdgeFailure(describe_error(exc))
        self.parent_out[i] = output or None

    def _merged(self) -> dict | None:
        """The merged input (``{}`` when every parent's is empty: compared like any other, SPEC §2),
        or None when an edge failed (the node does not compute)."""
        outs = self.parent_out
        if len(outs) == 1:
            only = outs[0]
            if only is None:
                return {}
            if isinstance(only, _EdgeFailure):
                self.record_error(only.message, None)
                return None
            return only
        merged: dict = {}
        for out in outs:
            if out is None:
                continue
            if isinstance(out, _EdgeFailure):
                self.record_error(out.message, None)
                return None
            merged.update(out)
        return merged

    def _step(self, seq: int, record: Any, compare_input: bool, always: bool) -> Any:
        """Rules 1-4 for one record (number ``seq``); the new output when it is to be propagated, else None."""
        value = record
        if self.in_chain:
            try:
                value = _through(self.in_chain, value)
            except (Exception, SystemExit) as exc:  # user code: sys.exit() is an error too, never an exit
                self.record_error(describe_error(exc), record)
                return None
            if value is None:
                return None
        if compare_input and not always and not self.stateful and (value == self.input
                                                                   or nan_equal(value, self.input)):
            return None
        self.input = value
        started = perf_counter()
        try:
            out = self.calc(value)
            if out is not None:
                if type(out) is not dict and not isinstance(out, dict):
                    raise not_a_map("calculator", self.calc_name, out)
                if self.out_chain:
                    out = _through(self.out_chain, out)
        except LateRecord as exc:  # a stateful calculator's: counted and dead-lettered, not an error
            self.times.append(perf_counter() - started)
            if self.stateful:
                self.states.late(str(exc), value, self.on_error, self.seq)
            else:  # as the plain path (which stateful nodes never take) treats it
                self.record_error(describe_error(exc), value)
            return None
        except (Exception, SystemExit) as exc:  # user code: sys.exit() is an error too, never an exit
            self.times.append(perf_counter() - started)
            self.record_error(describe_error(exc), value)
            return None
        self.times.append(perf_counter() - started)  # one observation per compute, folded in per epoch
        if out is None or (not always and (out == self.output or nan_equal(out, self.output))):
            return None
        self.output = out
        return out

    def record_error(self, message: str, input_value: Any) -> None:
        """Rule 4 bookkeeping: count, keep, dead-letter (naming ``self.seq``, the record being computed)."""
        self.stats.error(message, input_value, self.clock())
        if self.on_error is not None:
            self.on_error(self.name, message, input_value, self.seq)

    def _account(self) -> None:
        """Per epoch: the computes, their durations (one observation each), the latest values."""
        stats = self.stats
        stats.input, stats.output = self.input, self.output
        if self.states.figures:
            self.states.account()
        times = self.times
        if times:
            stats.computes += len(times)
            stats.compute_seconds.observe_each(times)
            stats.last_compute = self.clock()
            times.clear()


def _through(chain: tuple[tuple[str, Callable], ...], value: Any) -> Any:
    """``value`` through a chain of transformers; None as soon as one returns None."""
    for name, trans in chain:
        value = trans(value)
        if value is None:
            return None
        if type(value) is not dict and not isinstance(value, dict):
            raise not_a_map("transformer", name, value)
    return value


def _seqs_noted(logic: NodeLogic, seqs: list[int] | range) -> Iterator[int]:
    """``seqs``, setting ``logic.seq`` to each as it is taken (what the tap's calculator reads)."""
    for seq in seqs:
        logic.seq = seq
        yield seq


def _seq_of(event: tuple) -> int:
    return event[0]


def _identity(record: Any) -> Any:
    return record
