"""Which nodes run in int8, which stay float and why, and which tensors get a QuantizeLinear pair.

The op registry below is the documentation: an op type is quantizable when it has an entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import onnx

from edgekit.quantizer.graph import GraphView
from edgekit.quantizer.recipe import Recipe

ACTIVATION_FUNCTIONS = ("Relu", "Clip")
# Elementwise functions that compile to a 256-entry lookup table on their int8 input's grid.
TABLE_FUNCTIONS = ("Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "LeakyRelu", "PRelu", "Elu", "Erf")
# Ops that only ever run as part of a lookup-table chain (below): alone, edgekit has no int8 form for them.
CHAIN_ONLY = ("Div", "Sub", "Max", "Min")  # Max/Min with a constant: tf2onnx's clamps
# Elementwise ops a chain may hold. With one activation source and otherwise constants, any
# composition of them is a function of the source's 256 codes, one table: GELU as torch exports it
# (x * (0.5 * (1 + erf(x / sqrt 2)))), Mish-like and swish-like compositions. The tensors inside a
# chain are not quantized (the QDQ model computes them in float, the compiled one in the table).
CHAIN_OPS = (*TABLE_FUNCTIONS, *CHAIN_ONLY, "Mul", "Add", "Relu", "Clip")


@dataclass(frozen=True)
class OpRule:
    """How one op type is quantized.

    inputs: indices of the inputs that are quantized (None: all of them); others stay as they are.
    weight: the input that is a weight when it is a constant (symmetric int8, per channel along
        `weight_axis(node, rank)` when the recipe asks for it).
    bias: the input that becomes int32 with scale = input scale x weight scale.
    passes_scale: the output holds a subset or rearrangement of the input's values, so it reuses the
        input's parameters instead of being calibrated (ONNX Runtime's convention too).
    fuses_activation: a Relu/Clip that is the only consumer of the output runs inside this node's
        integer output: the tensor between them is not quantized.
    """

    inputs: tuple[int, ...] | None = None
    weight: int | None = None
    weight_axis: Callable[[onnx.NodeProto, int], int | None] | None = None
    bias: int | None = None
    passes_scale: bool = False
    fuses_activation: bool = False
    table: bool = False  # an elementwise function of its one quantized input: a lookup table when compiled
    chain_only: bool = False  # quantized only inside a lookup-table chain (CHAIN_ONLY)


def _attr(node: onnx.NodeProto, name: str, default):
    for attr in node.attribute:
        if attr.name == name:
            return onnx.helper.get_attribute_value(attr)
    return default


def _conv_transpose_axis(node: onnx.NodeProto, rank: int) -> int | None:
    # Weight is (C_in, C_out/group, k...): with groups, axis 1 is not the output channel.
    return 1 if _attr(node, "group", 1) == 1 else None


QUANTIZERS: dict[str, OpRule] = {
    "Conv": OpRule((0, 1, 2), weight=1, weight_axis=lambda node, rank: 0, bias=2, fuses_activation=True),
    "ConvTranspose": OpRule((0, 1, 2), weight=1, weight_axis=_conv_transpose_axis, bias=2, fuses_activation=True),
    "Gemm": OpRule((0, 1, 2), weight=1, weight_axis=lambda node, rank: 0 if _attr(node, "transB", 0) else 1, bias=2, fuses_activation=True),
    "MatMul": OpRule((0, 1), weight=1, weight_axis=lambda node, rank: rank - 1 if rank >= 2 else None, fuses_activation=True),
    "Add": OpRule(fuses_activation=True),
    "Mul": OpRule(),
    "Concat": OpRule(),
    "MaxPool": OpRule((0,), passes_scale=True),
    "AveragePool": OpRule((0,)),
    "GlobalAveragePool": OpRule((0,)),
    "ReduceMean": OpRule((0,)),  # torch's adaptive_avg_pool2d(x, 1) and x.mean((2, 3)); axes is an input since opset 18
    "Relu": OpRule((0,)),
    "Clip": OpRule((0,)),
    "Reshape": OpRule((0,), passes_scale=True),
    "Flatten": OpRule((0,), passes_scale=True),
    "Transpose": OpRule((0,), passes_scale=True),
    "Squeeze": OpRule((0,), passes_scale=True),
    "Unsqueeze": OpRule((0,), passes_scale=True),
    "Split": OpRule((0,), passes_scale=True),
    # Resize picks (nearest) or interpolates (linear) its input's values: never outside their range.
    "Resize": OpRule((0,), passes_scale=True),
    # The slope of PRelu stays a float constant: it is part of the table.
    **{op: OpRule((0,), table=True) for op in TABLE_FUNCTIONS},
    **{op: OpRule(chain_only=True) for op in CHAIN_ONLY},
}


@dataclass(frozen=True)
class LookupChain:
    """Elementwise nodes computing one function of `source`: compiled to one table into `output`'s grid."""

    source: str
    nodes: tuple[str, ...]  # in graph order
    output: str
    inner: frozenset[str]  # the tensors between them, which get no QuantizeLinear


@dataclass
class NodeDecision:
    name: str
    op_type: str
    quantized: bool
    reason: str  # why it stays float, or what was done to it
    chain_only: bool = False  # float unless a lookup-table chain takes it (a CHAIN_ONLY op nothing else forced to float)


@dataclass
class ConstantPlan:
    """A constant input replaced by its int8/int32 form and a DequantizeLinear."""

    tensor: str
    role: str  # weight | constant | bias
    node: str
    input_index: int
    axis: int | None
    scale_from: tuple[str, str] | None = None  # bias: (activation input, weight constant key)

    @property
    def key(self) -> str:
        # One quantized copy per constant and use: a weight shared by two convs quantizes once.
        if self.role == "bias":
            return f"{self.tensor}@{self.node}"
        return self.tensor if self.axis is None else f"{self.tensor}@axis{self.axis}"


@dataclass
class ActivationPlan:
    """An activation tensor that gets QuantizeLinear -> DequantizeLinear, read by `consumers`."""

    tensor: str
    producer: str | None
    producer_op: str | None
    consumers: list[str] = field(default_factory=list)
    shares_with: str | None = None  # pass-through output: the tensor whose parameters it reuses


@dataclass
class Plan:
    nodes: list[NodeDecision]
    activations: dict[str, ActivationPlan]
    constants: list[ConstantPlan]
    fused: dict[str, str]  # tensor -> the Relu/Clip node that runs in its producer's integer output
    notes: dict[str, list[str]]  # node -> extra facts for the record (bias left float, ...)
    producers: dict[str, str] = field(default_factory=dict)  # fused tensor -> its producer node
    # tensor -> the Mul that reads it beside the table function's own input (SiLU: x * sigmoid(x)):
    # not quantized, the function and the product compile to one table.
    tables: dict[str, str] = field(default_factory=dict)
    chains: list[LookupChain] = field(default_factory=list)
    # Add node -> the MatMul whose constant bias it adds: the MatMul's output is not requantized,
    # the bias is int32 on the accumulator's grid (a Linear layer as exporters write it for 3-D inputs).
    bias_adds: dict[str, str] = field(default_factory=dict)

    def quantized_nodes(self) -> set[str]:
        return {d.name for d in self.nodes if d.quantized}

    def fused_producer(self, activation: str) -> str:
        """The node whose integer output the fused Relu/Clip `activation` runs in."""
        return next(self.producers[t] for t, node in self.fused.items() if node == activation)

    def root(self, tensor: str) -> str:
        """The tensor whose calibrated parameters `tensor` uses (itself unless it passes scales through)."""
        seen = set()
        while self.activations[tensor].shares_with and tensor not in seen:
            seen.add(tensor)
            tensor = self.activations[tensor].shares_with
        return tensor


def make_plan(view: GraphView, recipe: Recipe, extreme: dict[str, str] | None = None, float_nodes: dict[str, str] | None = None) -> Plan:
    """Decide every node and tensor.

    extreme: tensor -> description, for activations found to hold extreme values (masks built from
        the float minimum): their consumers stay float. float_nodes: node -> reason for nodes forced
        to float from outside (the accuracy budget's fallbacks).
    """
    extreme = extreme or {}
    float_nodes = float_nodes or {}
    decisions = [_decide(view, recipe, node, extreme, float_nodes) for node in view.nodes]
    # A chain-only producer (Div, Sub, ...) is int8 if a chain takes it, known only below: here it
    # keeps its pass-throughs (a MaxPool after hard-swish), the second pass drops them if it stays float.
    _passthrough_follows_producer(view, decisions, chain_only_counts=True)
    quantized = {d.name for d in decisions if d.quantized}
    fused = _fusions(view, quantized)
    tables = _table_products(view, quantized)
    chains = _lookup_chains(view, decisions, tables)
    chain_of = {name: chain for chain in chains for name in chain.nodes}
    # A chain's table takes its Relu/Clip and its x * sigmoid(x) products with the rest.
    fused = {t: a for t, a in fused.items() if a not in chain_of and view.producer[t].name not in chain_of}
    tables = {t: m for t, m in tables.items() if m not in chain_of and view.producer[t].name not in chain_of}
    for decision in decisions:
        if decision.name in chain_of:
            decision.quantized, decision.reason = True, ""
    _passthrough_follows_producer(view, decisions, chain_only_counts=False)
    chains = _chains_with_int8_consumers(view, decisions, chains)
    chain_of = {name: chain for chain in chains for name in chain.nodes}
    inner = set().union(*(chain.inner for chain in chains))
    quantized = {d.name for d in decisions if d.quantized}
    bias_adds = _matmul_bias_adds(view, quantized, set(chain_of))
    inner |= {view.node(mm).output[0] for mm in bias_adds.values()}
    activations: dict[str, ActivationPlan] = {}
    constants: list[ConstantPlan] = []
    notes: dict[str, list[str]] = {}
    for node in view.nodes:
        if node.name not in quantized:
            continue
        rule = QUANTIZERS[node.op_type]
        indices = _quantized_inputs(node, rule)
        if node.name in chain_of:  # constants are part of the table, inner tensors are not quantized
            indices = [i for i, tensor in enumerate(node.input) if tensor == chain_of[node.name].source]
        for index in indices:
            tensor = node.input[index]
            if view.is_constant(tensor) and node.name in bias_adds:
                constants.append(ConstantPlan(tensor, "bias", node.name, index, None))
                notes.setdefault(node.name, []).append(f"adds {tensor} as the int32 bias of {bias_adds[node.name]} (its output is not requantized before the add)")
            elif view.is_constant(tensor):
                plan = _constant_plan(view, recipe, node, rule, index, notes)
                if plan:
                    constants.append(plan)
            elif tensor not in fused and tensor not in tables and tensor not in inner:
                producer = view.producer.get(tensor)
                entry = activations.setdefault(tensor, ActivationPlan(tensor, producer.name if producer else None, producer.op_type if producer else None))
                entry.consumers.append(node.name)
        if node.name in {fused.get(t) for t in node.input}:
            notes.setdefault(node.name, []).append(f"runs inside the integer output of {view.producer[node.input[0]].name}")
    for tensor, entry in activations.items():
        producer = view.producer.get(tensor)
        if producer is not None and producer.name in quantized and QUANTIZERS[producer.op_type].passes_scale:
            source = producer.input[0]
            if source in activations and tensor in producer.output:  # every output of a Split
                entry.shares_with = source
    for tensor in _pooled_grids(view, recipe, activations):
        pool = view.producer[tensor]
        activations[pool.input[0]].shares_with, activations[tensor].shares_with = tensor, None
        notes.setdefault(pool.name, []).append(
            f"its input {pool.input[0]} is quantized on the grid calibrated on its output: max pooling commutes with clamping and rounding, and the pooled range is narrower"
        )
    _link_biases(constants, activations, fused, view, bias_adds)
    _note_tables(view, quantized - set(chain_of), tables, activations, notes)
    for chain in chains:
        into = f"the int8 grid of {chain.output}" if chain.output in activations else f"float {chain.output} (no quantized consumer: runs in float)"
        ops = " -> ".join(view.node(n).op_type for n in chain.nodes)
        for name in chain.nodes:
            others = ", ".join(n for n in chain.nodes if n != name)
            notes.setdefault(name, []).append(f"lookup table: {ops} from the int8 grid of {chain.source} into {into} (one table with {others})")
    return Plan(decisions, activations, constants, fused, notes, {t: view.producer[t].name for t in fused}, tables, chains, bias_adds)


def _decide(view: GraphView, recipe: Recipe, node: onnx.NodeProto, extreme: dict[str, str], float_nodes: dict[str, str]) -> NodeDecision:
    def stays_float(reason: str) -> NodeDecision:
        return NodeDecision(node.name, node.op_type, False, reason)

    if node.name in float_nodes:
        return stays_float(float_nodes[node.name])
    excluded = recipe.exclusion(node.name, node.op_type)
    if excluded:
        return stays_float(excluded)
    rule = QUANTIZERS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
    if rule is None:
        return stays_float(f"op type {node.op_type} has no int8 rule in edgekit (unsupported)")
    if node.op_type not in recipe.quantize_ops:
        return stays_float(f"op type {node.op_type} is not in the recipe's [ops].quantize list")
    if rule.chain_only:
        return NodeDecision(node.name, node.op_type, False, CHAIN_ONLY_REASON.format(op=node.op_type), chain_only=True)
    inputs = [node.input[i] for i in _quantized_inputs(node, rule)]
    for tensor in inputs:
        if not view.is_float(tensor):
            dtype = onnx.helper.tensor_dtype_to_np_dtype(view.elem_types[tensor]).name
            return stays_float(f"input {tensor} is {dtype}, not float32")
        if tensor in extreme:
            return stays_float(f"input {tensor} {extreme[tensor]}")
        if view.is_constant(tensor):
            value = view.constants[tensor]
            if value.size and float(abs(value.astype("float64")).max()) >= recipe.extreme_abs:
                return stays_float(f"constant input {tensor} holds values with |x| >= {recipe.extreme_abs:g} (a mask or sentinel value)")
    if all(view.is_constant(t) for t in inputs):
        return stays_float("all inputs are constants (folded at compile time)")
    if _residual_stream_add(view, node):
        return stays_float(RESIDUAL_REASON)
    return NodeDecision(node.name, node.op_type, True, "")


# A transformer's residual stream carries a few channels 10-100x larger than the rest: one int8
# grid for the sum and its two inputs loses the small ones (a 6-layer sentence encoder: mean
# output cosine 0.949 with these adds in int8, 0.992 without).
RESIDUAL_REASON = "residual add feeding a LayerNormalization: the residual stream's outlier channels do not fit one int8 grid"


def _residual_stream_add(view: GraphView, node: onnx.NodeProto) -> bool:
    if node.op_type != "Add" or len(node.input) != 2 or any(view.is_constant(t) for t in node.input):
        return False
    return any(c.op_type == "LayerNormalization" for c, _ in view.consumers.get(node.output[0], []))


CHAIN_ONLY_REASON = "op type {op} runs in int8 only inside a lookup-table chain (one activation source, constants, at least one function such as Erf or Sigmoid)"


def _lookup_chains(view: GraphView, decisions: list[NodeDecision], tables: dict[str, str]) -> list[LookupChain]:
    """Chains of elementwise nodes that compute one function of one activation, grown from each node in graph order.

    From an elementwise node of one activation the chain grows up through ops of one activation and
    constants whose output only it reads (GELU's x / sqrt 2), which fixes the source; then down
    through every op whose non-constant inputs are the source or the chain's own tensors (+ 1,
    * 0.5, * x). It stands if only its last tensor is read outside it and it needs a table
    (_needs_table): paddle2onnx's affine-hard-swish-affine blocks become one table. A node forced to float, or
    excluded by the recipe, is never taken: its decision already says float for its own reason.
    """
    by_name = {d.name: d for d in decisions}
    order = {node.name: i for i, node in enumerate(view.nodes)}
    chains, taken = [], set()

    def eligible(node: onnx.NodeProto) -> bool:
        decision = by_name[node.name]
        return node.name not in taken and node.op_type in CHAIN_OPS and (decision.quantized or decision.chain_only) and len(node.output) == 1

    for start in view.nodes:
        if not eligible(start) or start.output[0] in tables or len(_activations(view, start)) != 1 or not _scalar_constants(view, start):
            continue
        members, source = _grow_up(view, start, eligible)
        _grow_down(view, members, source, eligible)
        made = {view.node(n).output[0] for n in members}
        escaping = [t for t in made if t in view.graph_outputs or any(c.name not in members for c, _ in view.consumers.get(t, []))]
        if len(members) < 2 or len(escaping) != 1 or not _needs_table(view, members):
            continue
        chains.append(LookupChain(source, tuple(sorted(members, key=order.get)), escaping[0], frozenset(made - set(escaping))))
        taken |= members
    return chains


def _pooled_grids(view: GraphView, recipe: Recipe, activations: dict[str, ActivationPlan]) -> list[str]:
    """MaxPool outputs whose input takes their grid instead of giving them its own.

    max(round(clamp(x))) = round(clamp(max(x))) for any monotone grid, so quantizing a pool's input
    on the range calibrated after pooling loses nothing a window's maximum keeps, and the pooled
    range is narrower: a PReLU's or hard-swish's negative tail seldom survives a max (MTCNN's
    PReLU -> MaxPool blocks: the grid 28% finer). Only where the pool alone reads its input, the
    input is not itself a pass-through (it has a grid of its own to give up), and the recipe says
    nothing of either tensor (a range or method the user set for the input stays the input's).
    """

    def overridden(tensor: str) -> bool:
        producer = view.producer.get(tensor)
        return bool(recipe.rule_sources(tensor, producer.op_type if producer else None, producer.name if producer else None))

    pooled = []
    for tensor, entry in activations.items():
        pool = view.producer.get(tensor)
        if pool is None or pool.op_type != "MaxPool" or entry.shares_with != pool.input[0]:
            continue
        source = pool.input[0]
        producer = view.producer.get(source)
        readers = view.consumers.get(source, [])
        if len(readers) == 1 and source not in view.graph_outputs and activations[source].shares_with is None \
                and producer is not None and not QUANTIZERS.get(producer.op_type, OpRule()).passes_scale \
                and not overridden(source) and not overridden(tensor):
            pooled.append(tensor)
    return pooled


def _chains_with_int8_consumers(view: GraphView, decisions: list[NodeDecision], chains: list[LookupChain]) -> list[LookupChain]:
    """The chains whose output an int8 node reads; the others run in float, and say so.

    A table maps onto the grid of the next QuantizeLinear; with none (the chain feeds a float op or
    a model output) its nodes are float ops, and the record must call them that, or compile finds
    float ops it was never told about. Dropping a chain can leave a pass-through after it with a
    float producer, so this repeats until nothing changes.
    """
    by_name = {d.name: d for d in decisions}
    kept = list(chains)
    in_chains = {name for chain in chains for name in chain.nodes}

    def read_by_int8(tensor: str, quantized: set[str], own: tuple[str, ...]) -> bool:
        return any(u.name in quantized and u.name not in own for u, _ in view.consumers.get(tensor, []))

    while True:
        quantized = {d.name for d in decisions if d.quantized}
        dropped = [c for c in kept if not read_by_int8(c.output, quantized, c.nodes)]
        # A lone table function (and its x * f(x) product) is the same: a table needs the next grid.
        lone = [
            d for d in decisions
            if d.quantized and d.name not in in_chains and QUANTIZERS[d.op_type].table
            and not read_by_int8(view.node(d.name).output[0], quantized, (d.name,))
        ]
        if not dropped and not lone:
            return kept
        for chain in dropped:
            for name in chain.nodes:
                by_name[name].quantized = False
                by_name[name].reason = f"part of a lookup-table chain from {chain.source} whose output {chain.output} no int8 op reads: the chain runs in float"
        for decision in lone:
            decision.quantized = False
            decision.reason = f"a lookup table needs the grid of the next int8 op, and no int8 op reads {view.node(decision.name).output[0]}: runs in float"
        kept = [c for c in kept if c not in dropped]
        _passthrough_follows_producer(view, decisions, chain_only_counts=False)


def _scalar_constants(view: GraphView, node: onnx.NodeProto) -> bool:
    """Whether every constant input of `node` is one value. A chain takes per-channel constants
    only below its start: a bias Add right after a MatMul stays the matmul's (as an int32 bias or
    an integer add) instead of making one table per output channel."""
    return all(view.constants[t].size == 1 for t in node.input if t and view.is_constant(t))


def _needs_table(view: GraphView, members: set[str]) -> bool:
    """Whether the chain computes something integer ops would not do as well: a function (Erf,
    Sigmoid, ...), a chain-only op (Div, Sub), or a product of two of its own tensors (hard-swish as
    paddle2onnx writes it: x * clip(x + 3, 0, 6) / 6). Chains of Add/Mul by constants and Relu/Clip
    alone keep their integer ops and fusions."""
    for name in members:
        node = view.node(name)
        if node.op_type in TABLE_FUNCTIONS or node.op_type in CHAIN_ONLY:
            return True
        if node.op_type == "Mul" and len(_activations(view, node)) == 2:
            return True
    return False


def _activations(view: GraphView, node: onnx.NodeProto) -> list[str]:
    return [t for t in node.input if t and not view.is_constant(t)]


def _grow_up(view: GraphView, start: onnx.NodeProto, eligible) -> tuple[set[str], str]:
    """`start` and the one-activation ops above it whose output only the chain reads; the chain's source."""
    members, (source,) = {start.name}, _activations(view, start)
    while (producer := view.producer.get(source)) is not None and eligible(producer) and len(_activations(view, producer)) == 1 \
            and _scalar_constants(view, producer) and len(view.consumers.get(source, [])) == 1 and source not in view.graph_outputs:
        members.add(producer.name)
        (source,) = _activations(view, producer)
    return members, source


def _grow_down(view: GraphView, members: set[str], source: str, eligible) -> None:
    """Add to `members` every eligible op reading only `source`, the chain's tensors and constants, until none is left."""
    frontier = [view.node(n).output[0] for n in members]
    while frontier:
        made = {view.node(n).output[0] for n in members}
        added = [consumer for tensor in frontier for consumer, _ in view.consumers.get(tensor, [])
                 if consumer.name not in members and eligible(consumer) and all(t == source or t in made for t in _activations(view, consumer))]
        members.update(c.name for c in added)
        frontier = [c.output[0] for c in added]


def _passthrough_follows_producer(view: GraphView, decisions: list[NodeDecision], chain_only_counts: bool) -> None:
    """A node that only passes values through extends an int8 region but never starts one.

    Otherwise it would put a QuantizeLinear on a float tensor that nothing else quantizes, and
    falling back the layer before it (accuracy budget) would leave that error in place.
    """
    by_name = {d.name: d for d in decisions}
    changed = True
    while changed:
        changed = False
        for decision in decisions:
            if not (decision.quantized and QUANTIZERS[decision.op_type].passes_scale):
                continue
            producer = view.producer.get(view.node(decision.name).input[0])
            if producer is None or not (by_name[producer.name].quantized or (chain_only_counts and by_name[producer.name].chain_only)):
                source = f"float node {producer.name}" if producer is not None else "the model input"
                decision.quantized = False
                decision.reason = f"passes its input's scale through, and its input comes from {source}"
                changed = True


def _quantized_inputs(node: onnx.NodeProto, rule: OpRule) -> list[int]:
    indices = range(len(node.input)) if rule.inputs is None else rule.inputs
    return [i for i in indices if i < len(node.input) and node.input[i]]


def _fusions(view: GraphView, quantized: set[str]) -> dict[str, str]:
    fused = {}
    for node in view.nodes:
        if node.name not in quantized or not QUANTIZERS[node.op_type].fuses_activation:
            continue
        output = node.output[0]
        users = view.consumers.get(output, [])
        if len(users) == 1 and output not in view.graph_outputs:
            user, index = users[0]
            if user.op_type in ACTIVATION_FUNCTIONS and user.name in quantized and index == 0:
                fused[output] = user.name
    return fused


def _table_products(view: GraphView, quantized: set[str]) -> dict[str, str]:
    """Table outputs whose only consumer is a quantized Mul of them by the function's own input (x * f(x))."""
    products = {}
    for node in view.nodes:
        if node.name not in quantized or not QUANTIZERS[node.op_type].table:
            continue
        output = node.output[0]
        users = view.consumers.get(output, [])
        if len(users) != 1 or output in view.graph_outputs:
            continue
        user, index = users[0]
        if user.op_type == "Mul" and user.name in quantized and len(user.input) == 2 and user.input[1 - index] == node.input[0]:
            products[output] = user.name
    return products


def _note_tables(view: GraphView, quantized: set[str], tables: dict[str, str], activations: dict[str, ActivationPlan], notes: dict) -> None:
    """Say for every table function which grids its table maps between (the compiler builds it from them)."""
    for node in view.nodes:
        if node.name not in quantized or not QUANTIZERS[node.op_type].table:
            continue
        output, last = node.output[0], node.name
        if output in tables:
            last = tables[output]
            notes.setdefault(last, []).append(f"one lookup table with {node.name}: {node.input[0]} * {node.op_type}({node.input[0]})")
            output = view.node(last).output[0]
        into = f"the int8 grid of {output}" if output in activations else f"float {output} (no quantized consumer: runs in float)"
        with_product = f" times its input (with {last})" if last != node.name else ""
        notes.setdefault(node.name, []).append(f"lookup table: {node.op_type}{with_product} from the int8 grid of {node.input[0]} into {into}")


def _constant_plan(view: GraphView, recipe: Recipe, node: onnx.NodeProto, rule: OpRule, index: int, notes: dict) -> ConstantPlan | None:
    tensor = node.input[index]
    value = view.constants[tensor]
    if index == rule.weight:
        axis = rule.weight_axis(node, value.ndim) if (rule.weight_axis and recipe.weight_granularity == "per_channel" and value.ndim >= 2) else None
        return ConstantPlan(tensor, "weight", node.name, index, axis)
    if index == rule.bias:
        reason = _bias_problem(view, node, value)
        if reason:
            notes.setdefault(node.name, []).append(f"bias {tensor} left float: {reason}")
            return None
        return ConstantPlan(tensor, "bias", node.name, index, None)
    return ConstantPlan(tensor, "constant", node.name, index, None)


def _bias_problem(view: GraphView, node: onnx.NodeProto, bias) -> str | None:
    if bias.ndim != 1:
        return f"shape {tuple(bias.shape)} is not one value per output channel"
    if node.op_type == "Gemm" and (_attr(node, "alpha", 1.0) != 1.0 or _attr(node, "beta", 1.0) != 1.0):
        return "Gemm alpha/beta are not 1"
    if view.is_constant(node.input[0]):
        return "the data input is a constant"
    weight = node.input[1]
    if not view.is_constant(weight):
        return "the weight is not a constant"
    return None


def _matmul_bias_adds(view: GraphView, quantized: set[str], in_chains: set[str]) -> dict[str, str]:
    """Quantized Adds of a constant vector to the only output of a quantized MatMul by constant weights."""
    found = {}
    for node in view.nodes:
        if node.op_type != "Add" or node.name not in quantized or node.name in in_chains or len(node.input) != 2:
            continue
        const = [i for i in (0, 1) if view.is_constant(node.input[i])]
        if len(const) != 1:
            continue
        data, bias = node.input[1 - const[0]], view.constants[node.input[const[0]]]
        producer = view.producer.get(data)
        if producer is None or producer.op_type != "MatMul" or producer.name not in quantized or producer.name in in_chains:
            continue
        if not view.is_constant(producer.input[1]) or view.is_constant(producer.input[0]):
            continue
        weight = view.constants[producer.input[1]]
        if weight.ndim != 2 or bias.ndim != 1 or bias.size != weight.shape[1]:
            continue
        if len(view.consumers.get(data, [])) != 1 or data in view.graph_outputs:
            continue
        found[node.name] = producer.name
    return found


def _link_biases(constants: list[ConstantPlan], activations: dict[str, ActivationPlan], fused: dict, view: GraphView, bias_adds: dict[str, str]) -> None:
    weights = {(c.node, c.role): c for c in constants}
    for plan in constants:
        if plan.role != "bias":
            continue
        node = view.node(bias_adds.get(plan.node, plan.node))  # a bias Add's scale comes from its MatMul
        weight = weights.get((node.name, "weight"))
        plan.axis = 0 if weight is not None and weight.axis is not None else None
        plan.scale_from = (node.input[0], weight.key if weight else "")
