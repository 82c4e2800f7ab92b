"""Float ops left inside quantized regions, named by the ONNX nodes they came from.

A quantized region runs from a DequantizeLinear to the next QuantizeLinear. After the rewrite
(integer.py) everything between them should be integers; an op that no rule of integer_rules.py
took stays as TVM imported it: its input is dequantized, it computes in float, and its output is
quantized again. That is a choice somebody has to make (edgekit's quantizer records it as a
float node of its `.quant.json`; `edgekit compile --float-nodes` names it), never a silent one.

In the rewritten module a float op is inside a region when it is both

- after an exit from the integers: it reads, through float ops only, a `dequantize` of an
  activation (not of a constant weight) or the float meaning the rewrite gave an integer value
  (`to_float`), and
- before an entry into them: a `quantize` that stayed float reads it, through float ops only.

The model input's QuantizeLinear (nothing integer before it) and a head's dequantize (no
QuantizeLinear after it) are region edges, not float ops inside one. A quantize whose input
comes straight from the integers but which no rule took (a per-channel or 16-bit output grid) is
a float requantization: it is reported as its own node.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import tvm
from tvm import relax

from edgekit.compiler.integer_values import tensor_constant
from edgekit.compiler.relax_import import OnnxNode

@dataclass(frozen=True)
class FloatNode:
    """An ONNX node that runs in float inside a quantized region, and why no integer rule took it."""

    name: str
    op_type: str
    ops: tuple[str, ...]  # the float Relax ops left for it, in graph order
    why: str

    def to_dict(self) -> dict:
        return {"node": self.name, "op_type": self.op_type, "ops": list(self.ops), "why": self.why}


def float_nodes_in_regions(
    func: relax.Function, nodes: Mapping[relax.Var, OnnxNode], dequantized: set[relax.Var], why: Callable[[relax.Call], str]
) -> list[FloatNode]:
    """The nodes of `func` (rewritten, dead code removed) whose float ops lie inside a quantized region.

    nodes: the var holding each ONNX node's output (relax_import.import_onnx); dequantized: the
    vars the rewrite bound to the float meaning of an integer value (region exits it made);
    why: the reason no rule took a call (integer_rules.why_no_rule on the rewrite's values).
    """
    bindings = {b.var: b.value for block in func.body.blocks for b in block.bindings if isinstance(b, relax.VarBinding)}
    consumers: dict[relax.Var, list[relax.Var]] = {var: [] for var in bindings}
    for var, value in bindings.items():
        for used in _vars_in(value):
            if used in consumers:
                consumers[used].append(var)

    def is_float(var: relax.Var) -> bool:
        return _is_float(var.ty)

    exits = [var for var, value in bindings.items() if var in dequantized or _exits_integers(value)]
    after_exit = _reach(exits, lambda v: [c for c in consumers[v] if is_float(c)])
    entries = [var for var, value in bindings.items() if _call_name(value) == "relax.quantize"]
    producers = {var: [u for u in _vars_in(value) if u in bindings and is_float(u)] for var, value in bindings.items()}
    before_entry = _reach([u for q in entries for u in producers[q]], lambda v: producers[v])

    found: dict[OnnxNode, list[relax.Call]] = {}
    for var, value in bindings.items():
        inside = var in after_exit and var in before_entry and var not in dequantized and not _exits_integers(value)
        if inside and isinstance(value, relax.Call):
            found.setdefault(_owner(var, nodes, consumers), []).append(value)
    for var in entries:  # a requantization no rule took, straight from the integers
        source = producers[var]
        if source and all(u in dequantized or _exits_integers(bindings[u]) for u in source):
            found.setdefault(nodes.get(var, OnnxNode("?", "QuantizeLinear")), []).append(bindings[var])
    return [FloatNode(node.name, node.op_type, tuple(dict.fromkeys(_call_name(c).removeprefix("relax.") for c in calls)), _first_reason(calls, why))
            for node, calls in found.items()]


def _first_reason(calls: list[relax.Call], why: Callable[[relax.Call], str]) -> str:
    """The node's most telling reason: ops edgekit has no rule for at all, else the first rule that
    did not apply, else an operand left float (the ops after the first read its float result)."""
    reasons = list(dict.fromkeys(why(call) for call in calls))
    missing = [r.removeprefix("edgekit has no integer rule for ") for r in reasons if r.startswith("edgekit has no integer rule for ")]
    if missing:
        return f"edgekit has no integer rule for {', '.join(missing)}"
    direct = [r for r in reasons if "is not an integer value" not in r]
    return (direct or reasons)[0]


def _owner(var: relax.Var, nodes: Mapping[relax.Var, OnnxNode], consumers: Mapping[relax.Var, list[relax.Var]]) -> OnnxNode:
    """The node `var` belongs to: its own, or the first node output it flows into (a converter's inner vars)."""
    queue, seen = deque([var]), {var}
    while queue:
        here = queue.popleft()
        if here in nodes:
            return nodes[here]
        for nxt in consumers.get(here, ()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return OnnxNode(str(var.name_hint) if hasattr(var, "name_hint") else "?", "?")


def _reach(start: list[relax.Var], step: Callable[[relax.Var], list[relax.Var]]) -> set[relax.Var]:
    seen = set(start)
    queue = deque(start)
    while queue:
        for nxt in step(queue.popleft()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


def _exits_integers(value: relax.Expr) -> bool:
    """A dequantize of an activation (a constant's dequantize is a float weight, not a region's exit)."""
    return _call_name(value) == "relax.dequantize" and tensor_constant(value.args[0]) is None


def _is_float(ty) -> bool:
    if isinstance(ty, relax.TupleType):
        return any(_is_float(field) for field in ty.fields)
    return isinstance(ty, relax.TensorType) and str(ty.dtype).startswith(("float", "bfloat"))


def _call_name(value: relax.Expr) -> str:
    if isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op):
        return value.op.name
    return ""


def _vars_in(value: relax.Expr) -> list[relax.Var]:
    found: list[relax.Var] = []
    relax.analysis.post_order_visit(value, lambda e: found.append(e) if isinstance(e, relax.Var) else None)
    return found
