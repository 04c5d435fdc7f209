"""The components one node runs, built for that node alone (SPEC §11: state belongs to a node).

Two nodes naming the same calculator each get an instance of their own, in the reference
evaluator as in the actor runtime, so a stateful calculator counts what reaches its node
only, whichever engine runs it.

Usage::

    calculator, transformers = build_node_parts(dag, "per_minute")
    calculator.calculate(record)                         # None when the node has no calculator
    transformers["rename"].transform(record)             # input, output and edge transformers
"""

from __future__ import annotations

from typing import Any

from graphs.catalog import build_component
from graphs.model import DagModel


def transformer_names(dag: DagModel, node: str) -> list[str]:
    """Every transformer ``node`` runs (input, output, and on its incoming edges), each once, in that order."""
    spec = dag.nodes[node]
    names = [*spec.input_transformers, *spec.output_transformers,
             *(e.data_transformer for e in dag.parents[node] if e.data_transformer)]
    return list(dict.fromkeys(names))


def build_node_parts(dag: DagModel, node: str) -> tuple[Any, dict[str, Any]]:
    """``(calculator or None, {transformer name: transformer})``, freshly built for ``node``."""
    spec = dag.nodes[node]
    calculator = build_component(dag.calculators[spec.calculator], "calculator") if spec.calculator else None
    transformers = {t: build_component(dag.transformers[t], "transformer") for t in transformer_names(dag, node)}
    return calculator, transformers
