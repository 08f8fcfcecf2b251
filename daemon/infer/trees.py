"""The model's tree ensemble, read from ``model.onnx`` and evaluated by a Numba kernel.

``model.runtime: compiled`` runs the trees of the very ``model.onnx`` the card names (and
hashes) with :func:`evaluate` instead of ONNX Runtime: one Numba call over preallocated
buffers, with no session, binding or graph executor around the tree walks.

What is read is what the real graphs hold, and nothing else:

* the demo model (onnxmltools ``convert_lightgbm``): ``TreeEnsembleRegressor -> Identity``;
* the daily ensemble (``ops/export_onnx.py``, merged build): one ``TreeEnsembleRegressor``
  whose leaf weights and base value already carry the members' IC weights.

The regressor must be single-target, ``aggregate_function`` SUM, ``post_transform`` NONE,
with ``BRANCH_LEQ`` and ``LEAF`` nodes and one weight per leaf.  Any other op, attribute or
value (``BRANCH_LT``, ``*_as_tensor``, a ``Mul``/``Sum`` combined ensemble, ...) raises
:class:`UnsupportedModel` naming it and the file: a silently different prediction would be
worse than a refusal to start.

Exactness: ONNX Runtime evaluates a float-input ``TreeEnsembleRegressor`` in float32: float32
features against float32 thresholds, NaN down the false branch unless the node's
``nodes_missing_value_tracks_true`` is 1, leaf weights summed in float32 tree by tree (in the
order the trees first appear in the node list), then the base value added.
:func:`evaluate` does the same operations in the same order, so it gives the same float32.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numba import njit

__all__ = ["UnsupportedModel", "TreeEnsemble", "NODE", "load_trees", "evaluate", "CompiledRunner"]

#: One split node, 16 bytes so a step of the walk reads one record.  A child reference >= 0 is
#: a split (an index into the nodes); < 0 is the leaf ``~ref`` of the leaf weights, so the walk
#: ends on a sign test with no mode to decode.  ``feature`` < 0 marks a node whose missing
#: value (NaN) goes to ``true`` (``nodes_missing_value_tracks_true``); its column is ``~feature``.
#: Folding that flag into the sign keeps the record at 16 bytes: 20-byte records with a separate
#: flag, or a separate thresholds array, made batches of 64 rows 15-25% slower.
NODE = np.dtype([("feature", np.int32), ("threshold", np.float32), ("true", np.int32), ("false", np.int32)])

_ATTRIBUTES = {  # what the reader understands; any other attribute of the node is refused
    "n_targets", "aggregate_function", "post_transform", "base_values",
    "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values", "nodes_modes",
    "nodes_truenodeids", "nodes_falsenodeids", "nodes_missing_value_tracks_true",
    "nodes_hitrates",  # a hint for node layout; it does not change the result
    "target_ids", "target_treeids", "target_nodeids", "target_weights",
}


class UnsupportedModel(ValueError):
    """``model.onnx`` holds something the compiled evaluator does not evaluate."""


@dataclass(frozen=True)
class TreeEnsemble:
    """Flat arrays of one single-target tree ensemble.

    roots : int32 (trees,), each tree's first node as a child reference (see :data:`NODE`).
    nodes : :data:`NODE` (splits,); go to ``true`` when ``x[feature] <= threshold``.
    leaves : float32 (leaves,), the leaf weights.
    base : float32 scalar, added after the trees.
    n_features : the row width.
    output_name : the graph output these arrays compute.
    """

    roots: np.ndarray
    nodes: np.ndarray
    leaves: np.ndarray
    base: np.float32
    n_features: int
    output_name: str

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predictions for float32 rows ``x`` (n, n_features); allocates (tests, tools)."""
        x = np.ascontiguousarray(x, np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"rows: expected shape (n, {self.n_features}); was {x.shape}")
        out = np.empty(len(x), np.float32)
        evaluate(x, len(x), self.roots, self.nodes, self.leaves, self.base, out)
        return out


@njit(cache=True, _nrt=False, nogil=True)
def evaluate(x, n, roots, nodes, leaves, base, out):
    """``out[i]`` = the ensemble's prediction of row ``x[i]``, for ``i < n``.

    float32 throughout, trees summed in order, then ``base``: ONNX Runtime's arithmetic.
    """
    for i in range(n):
        row = x[i]
        score = np.float32(0.0)
        for t in range(roots.shape[0]):
            k = roots[t]
            while k >= 0:
                node = nodes[k]
                f = node.feature
                if f >= 0:  # NaN compares false: it goes to `false`
                    go = row[f] <= node.threshold
                else:  # missing tracks true: `not >` is `<=` for numbers, true for NaN
                    go = not (row[~f] > node.threshold)
                k = node.true if go else node.false
            score += leaves[~k]
        out[i] = score + base


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _tree_node(graph, path: Path, input_name: str, output_name: str):
    """The graph's one TreeEnsembleRegressor, checked to feed ``output_name`` through Identity only."""
    for node in graph.node:
        if (node.domain, node.op_type) not in (("ai.onnx.ml", "TreeEnsembleRegressor"), ("", "Identity")):
            raise UnsupportedModel(
                f"{path}: op {node.domain + '.' if node.domain else ''}{node.op_type} (node {node.name!r}) is not "
                "supported by model.runtime 'compiled', which evaluates one ai.onnx.ml TreeEnsembleRegressor "
                "optionally followed by Identity; use model.runtime 'onnxruntime' for this graph")
    trees = [n for n in graph.node if n.op_type == "TreeEnsembleRegressor"]
    if len(trees) != 1:
        raise UnsupportedModel(f"{path}: expected one TreeEnsembleRegressor node, found {len(trees)}")
    tree = trees[0]
    if list(tree.input) != [input_name]:
        raise UnsupportedModel(f"{path}: the TreeEnsembleRegressor reads {list(tree.input)}, "
                               f"expected the graph input {input_name!r}")
    if output_name not in [o.name for o in graph.output]:
        raise UnsupportedModel(f"{path}: output {output_name!r} expected among the graph outputs "
                               f"{[o.name for o in graph.output]}")
    # Follow Identity nodes back from the graph output to the regressor.
    produced_by = {o: n for n in graph.node for o in n.output}
    name = output_name
    for _ in graph.node:  # bounded: a malformed Identity cycle must not hang the start
        if name not in produced_by or produced_by[name].op_type != "Identity":
            break
        name = produced_by[name].input[0]
    if name not in tree.output:
        raise UnsupportedModel(f"{path}: output {output_name!r} is not the TreeEnsembleRegressor's output "
                               "passed through Identity nodes")
    return tree


def load_trees(path: str | Path, *, input_name: str = "input", output_name: str = "",
               n_features: int | None = None) -> TreeEnsemble:
    """Read the tree ensemble of the ONNX file ``path`` into flat arrays.

    Parameters
    ----------
    path : the ONNX file.
    input_name : the graph input the rows arrive in (the card's ``input_name``).
    output_name : the graph output to compute; empty: the graph's first output.
    n_features : the row width; default: the input's declared second dimension.

    Raises
    ------
    UnsupportedModel
        Naming the file and the op, attribute or value the evaluator does not handle.
    """
    try:
        import onnx
    except ImportError:
        raise RuntimeError("model.runtime 'compiled' reads model.onnx with the onnx package, which is not "
                           "installed: pip install onnx (or pip install -e '.[train]')") from None
    path = Path(path)
    graph = onnx.load(str(path)).graph
    inputs = [i for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    if [i.name for i in inputs] != [input_name]:
        raise UnsupportedModel(f"{path}: expected one graph input {input_name!r}, found {[i.name for i in inputs]}")
    t = inputs[0].type.tensor_type
    if t.elem_type != onnx.TensorProto.FLOAT or len(t.shape.dim) != 2:
        raise UnsupportedModel(f"{path}: input {input_name!r} expected float32 of rank 2, found element type "
                               f"{onnx.TensorProto.DataType.Name(t.elem_type)} of rank {len(t.shape.dim)}")
    declared = t.shape.dim[1].dim_value or None
    if n_features is None:
        n_features = declared
    if n_features is None or (declared is not None and declared != n_features):
        raise UnsupportedModel(f"{path}: input {input_name!r} declares {declared} columns; expected {n_features}")
    output_name = output_name or graph.output[0].name
    tree = _tree_node(graph, path, input_name, output_name)

    a = _attrs(tree)
    unknown = sorted(set(a) - _ATTRIBUTES)
    if unknown:
        raise UnsupportedModel(f"{path}: TreeEnsembleRegressor attribute(s) {unknown} not supported by the compiled "
                               f"evaluator (it reads {sorted(_ATTRIBUTES)})")
    for key, want in (("n_targets", 1), ("aggregate_function", "SUM"), ("post_transform", "NONE")):
        if key in a and _text(a[key]) != str(want):
            raise UnsupportedModel(f"{path}: TreeEnsembleRegressor {key} expected {want}, found {_text(a[key])}")
    base = list(a.get("base_values", []))
    if len(base) > 1:
        raise UnsupportedModel(f"{path}: base_values expected at most one value (one target), found {len(base)}")

    tree_id = np.asarray(a["nodes_treeids"], np.int64)
    node_id = np.asarray(a["nodes_nodeids"], np.int64)
    n = len(tree_id)
    modes = [_text(m) for m in a["nodes_modes"]]
    other = sorted(set(modes) - {"BRANCH_LEQ", "LEAF"})
    if other:
        raise UnsupportedModel(f"{path}: nodes_modes {other} not supported by the compiled evaluator "
                               "(it evaluates BRANCH_LEQ and LEAF)")
    missing = np.asarray(a.get("nodes_missing_value_tracks_true", [0] * n), np.int64)
    columns = {k: len(a[k]) for k in ("nodes_nodeids", "nodes_featureids", "nodes_values", "nodes_modes",
                                      "nodes_truenodeids", "nodes_falsenodeids")}
    if set(columns.values()) != {n} or len(missing) != n:
        raise UnsupportedModel(f"{path}: node attributes expected {n} values each (nodes_treeids), found {columns}")

    index = {}
    for i, key in enumerate(zip(tree_id.tolist(), node_id.tolist())):
        if key in index:
            raise UnsupportedModel(f"{path}: node {key[1]} of tree {key[0]} appears twice")
        index[key] = i
    # Trees are summed in the order they first appear; ONNX Runtime takes each tree's first
    # listed node as its root, which is only well defined when a tree's nodes are contiguous.
    starts = np.flatnonzero(np.r_[True, tree_id[1:] != tree_id[:-1]])
    if len(starts) != len(np.unique(tree_id)):
        raise UnsupportedModel(f"{path}: the nodes of each tree expected contiguous in nodes_treeids")

    is_leaf = np.array([m == "LEAF" for m in modes])
    weight = np.full(n, np.nan, np.float64)
    for t_id, n_id, target, w in zip(a["target_treeids"], a["target_nodeids"], a["target_ids"], a["target_weights"]):
        i = index.get((t_id, n_id))
        if i is None or not is_leaf[i] or target != 0 or not np.isnan(weight[i]):
            raise UnsupportedModel(f"{path}: target weight for node {n_id} of tree {t_id} (target {target}) expected "
                                   "exactly one per LEAF node, for target 0")
        weight[i] = w
    if np.isnan(weight[is_leaf]).any():
        raise UnsupportedModel(f"{path}: {int(np.isnan(weight[is_leaf]).sum())} LEAF node(s) carry no target weight")

    # Child reference of every node: splits numbered 0.., leaves ~0, ~1, ...
    ref = np.empty(n, np.int64)
    ref[~is_leaf] = np.arange(int((~is_leaf).sum()))
    ref[is_leaf] = ~np.arange(int(is_leaf.sum()))
    splits = np.flatnonzero(~is_leaf)
    nodes = np.zeros(len(splits), NODE)
    feature = np.asarray(a["nodes_featureids"], np.int64)[splits]
    if len(feature) and (feature.min() < 0 or feature.max() >= n_features):
        raise UnsupportedModel(f"{path}: feature ids expected in [0, {n_features}), "
                               f"found {feature.min()}..{feature.max()}")
    nodes["feature"] = np.where(missing[splits] != 0, ~feature, feature)
    nodes["threshold"] = np.asarray(a["nodes_values"], np.float32)[splits]
    if np.isnan(nodes["threshold"]).any():  # the kernel's `not >` equals `<=` only for a number
        raise UnsupportedModel(f"{path}: nodes_values expected numbers on BRANCH_LEQ nodes, found NaN")
    for field, key in (("true", "nodes_truenodeids"), ("false", "nodes_falsenodeids")):
        for row, i in enumerate(splits):
            child = index.get((int(tree_id[i]), int(a[key][i])))
            if child is None:
                raise UnsupportedModel(f"{path}: node {node_id[i]} of tree {tree_id[i]}: {key} {a[key][i]} is no node "
                                       "of that tree")
            nodes[field][row] = ref[child]
    roots = ref[starts].astype(np.int32)
    _check_trees(path, roots, nodes, int(is_leaf.sum()))
    return TreeEnsemble(roots=roots, nodes=nodes, leaves=weight[is_leaf].astype(np.float32),
                        base=np.float32(base[0] if base else 0.0), n_features=int(n_features),
                        output_name=output_name)


def _check_trees(path: Path, roots: np.ndarray, nodes: np.ndarray, n_leaves: int) -> None:
    """Every node reached exactly once from a root: no cycle (the kernel would never return), no orphan."""
    split_seen, leaf_seen = np.zeros(len(nodes), bool), np.zeros(n_leaves, bool)
    stack = roots.tolist()
    while stack:
        k = stack.pop()
        seen, i = (split_seen, k) if k >= 0 else (leaf_seen, ~k)
        if seen[i]:
            raise UnsupportedModel(f"{path}: a node is reached twice from the tree roots: the trees are not trees")
        seen[i] = True
        if k >= 0:
            stack += [int(nodes["true"][k]), int(nodes["false"][k])]
    orphans = int((~split_seen).sum() + (~leaf_seen).sum())
    if orphans:
        raise UnsupportedModel(f"{path}: {orphans} node(s) are unreachable from their tree's first node")


class CompiledRunner:
    """:class:`alphad.daemon.infer.bound_runner.BoundRunner`'s interface over :func:`evaluate`.

    ``x`` (float32, max_batch x n_features) and ``y`` (float32, max_batch x 1) are allocated
    once; :meth:`run_bound` predicts the first ``b`` rows of ``x`` into ``y`` and returns the
    view ``y[:b, 0]``, the same type the ONNX Runtime runner returns (the infer stage's
    compiled publish step is specialised on it).
    """

    fast = True  # one path only: there is no slower public fallback

    def __init__(self, trees: TreeEnsemble, max_batch: int = 64) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch: expected >= 1; was {max_batch}")
        self.trees, self.n_features, self.max_batch = trees, trees.n_features, max_batch
        self.x = np.zeros((max_batch, trees.n_features), np.float32)
        self.y = np.zeros((max_batch, 1), np.float32)
        x, y, out = self.x, self.y, self.y[:, 0]
        roots, nodes, leaves, base = trees.roots, trees.nodes, trees.leaves, trees.base

        # A closure, not a method: the call is on the tick's path, and locals cost less than
        # attribute lookups.  The bound check guards the kernel, which does not check.
        def run_bound(b: int) -> np.ndarray:
            if not 0 < b <= max_batch:
                raise ValueError(f"batch of 1..{max_batch} rows expected, was {b}")
            evaluate(x, b, roots, nodes, leaves, base, out)
            return y[:b, 0]

        self.run_bound = run_bound

    def run(self, rows: np.ndarray) -> np.ndarray:
        """Predictions for ``rows`` (float32, shape (b, n_features), b <= max_batch)."""
        b = rows.shape[0]
        if not (1 <= b <= self.max_batch) or rows.shape[1] != self.n_features:
            raise ValueError(f"rows: expected shape (1..{self.max_batch}, {self.n_features}); was {rows.shape}")
        self.x[:b] = rows
        return self.run_bound(b)
