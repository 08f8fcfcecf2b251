"""ONNX export of LightGBM boosters and ensembles, plus a bound CPU session.

An ensemble ships as ONE graph computing ``sum_i w_i * member_i(x)`` with
input ``input`` (float32, shape [N, n_features], the full ordered feature
list) and output ``prediction`` (float32, shape [N, 1]).  Two builds:

* **merged** (regression members only, the default): the members'
  ``TreeEnsembleRegressor`` nodes are fused into one node.  Each member's leaf
  weights and base value are scaled by its ensemble weight and its feature
  ids are remapped from its subset to full input columns, so the graph is a
  single operator (no Gather / Mul / Add), which keeps one-row latency at one
  kernel launch.
* **combined** (any members, e.g. binary classifiers): each member is
  converted on its own, its names prefixed ``m<i>_``, fed by a ``Gather`` of
  its columns, and the outputs are combined with ``Mul`` and ``Sum`` nodes.

Conversion uses onnxmltools ``convert_lightgbm(..., target_opset=15)``.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from alphad.daemon.infer.bound_runner import BoundRunner
from alphad.ops.ensemble import Ensemble, MemberSpec

__all__ = [
    "TARGET_OPSET",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "booster_to_onnx",
    "ensemble_to_onnx",
    "save_onnx",
    "make_session",
    "BoundRunner",
]

#: Opset passed to onnxmltools.
TARGET_OPSET = 15
#: Graph input name (model card ``input_name``).
INPUT_NAME = "input"
#: Graph output name (model card ``output_name``).
OUTPUT_NAME = "prediction"


def booster_to_onnx(booster, n_features: int, *, binary: bool = False) -> onnx.ModelProto:
    """Convert one LightGBM booster (input ``input`` float32 [N, n_features]).

    Regression boosters output ``variable`` [N, 1]; binary ones output
    ``probabilities`` [N, 2] (zipmap disabled).
    """
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    if booster.num_feature() != n_features:
        raise ValueError(f"booster expects {booster.num_feature()} features; n_features was {n_features}")
    return onnxmltools.convert_lightgbm(
        booster,
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        target_opset=TARGET_OPSET,
        zipmap=False if binary else True,
    )


def _tree_node(model: onnx.ModelProto) -> onnx.NodeProto:
    nodes = [n for n in model.graph.node if n.op_type == "TreeEnsembleRegressor"]
    if len(nodes) != 1:
        raise ValueError(f"expected one TreeEnsembleRegressor node in the converted booster; found {len(nodes)}")
    return nodes[0]


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _merged(ens: Ensemble) -> onnx.ModelProto:
    F = len(ens.feature_names)
    acc: dict[str, list] = {
        k: []
        for k in (
            "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values", "nodes_modes",
            "nodes_truenodeids", "nodes_falsenodeids", "nodes_missing_value_tracks_true", "nodes_hitrates",
            "target_treeids", "target_nodeids", "target_ids", "target_weights",
        )
    }
    base = 0.0
    tree_offset = 0
    for spec, booster, w in zip(ens.members, ens.boosters, ens.weights):
        cols = spec.columns(F)
        a = _attrs(_tree_node(booster_to_onnx(booster, len(cols))))
        if a.get("post_transform", b"NONE") not in (b"NONE", "NONE"):
            raise ValueError(f"member {spec.name!r}: merged export needs post_transform NONE; was {a['post_transform']}")
        n_nodes = len(a["nodes_treeids"])
        tree_ids = np.asarray(a["nodes_treeids"], np.int64)
        acc["nodes_treeids"] += (tree_ids + tree_offset).tolist()
        acc["nodes_nodeids"] += list(a["nodes_nodeids"])
        # Subset column j is full-input column cols[j]; leaves carry 0 (unused).
        acc["nodes_featureids"] += cols[np.asarray(a["nodes_featureids"], np.int64)].tolist()
        acc["nodes_values"] += list(a["nodes_values"])
        acc["nodes_modes"] += list(a["nodes_modes"])
        acc["nodes_truenodeids"] += list(a["nodes_truenodeids"])
        acc["nodes_falsenodeids"] += list(a["nodes_falsenodeids"])
        acc["nodes_missing_value_tracks_true"] += list(a.get("nodes_missing_value_tracks_true", [0] * n_nodes))
        acc["nodes_hitrates"] += list(a.get("nodes_hitrates", [1.0] * n_nodes))
        acc["target_treeids"] += (np.asarray(a["target_treeids"], np.int64) + tree_offset).tolist()
        acc["target_nodeids"] += list(a["target_nodeids"])
        acc["target_ids"] += list(a["target_ids"])
        # Leaf values are stored as float32: scale in float64, round once.
        acc["target_weights"] += (np.asarray(a["target_weights"], np.float64) * float(w)).tolist()
        base += float(w) * float(np.sum(a.get("base_values", [0.0])))
        tree_offset = int(tree_ids.max()) + 1 + tree_offset
    attrs = dict(acc)
    node = helper.make_node(
        "TreeEnsembleRegressor",
        [INPUT_NAME],
        [OUTPUT_NAME],
        domain="ai.onnx.ml",
        name="weighted_ensemble",
        n_targets=1,
        post_transform="NONE",
        aggregate_function="SUM",
        base_values=[base],
        **attrs,
    )
    graph = helper.make_graph(
        [node],
        "alphad_ensemble",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, F])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [None, 1])],
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", TARGET_OPSET), helper.make_opsetid("ai.onnx.ml", 1)],
        producer_name="alphad.ops.export_onnx",
    )


def _combined(ens: Ensemble) -> onnx.ModelProto:
    F = len(ens.feature_names)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    scaled: list[str] = []
    ml_version = 1
    for i, (spec, booster, w) in enumerate(zip(ens.members, ens.boosters, ens.weights)):
        cols = spec.columns(F)
        m = booster_to_onnx(booster, len(cols), binary=spec.is_binary)
        m = onnx.compose.add_prefix(m, prefix=f"m{i}_")
        for op in m.opset_import:
            if op.domain == "ai.onnx.ml":
                ml_version = max(ml_version, op.version)
        sub_in = m.graph.input[0].name
        idx_name = f"m{i}_cols"
        inits.append(numpy_helper.from_array(cols.astype(np.int64), idx_name))
        nodes.append(helper.make_node("Gather", [INPUT_NAME, idx_name], [sub_in], axis=1, name=f"m{i}_gather"))
        nodes.extend(m.graph.node)
        inits.extend(m.graph.initializer)
        if spec.is_binary:
            prob = [o.name for o in m.graph.output if o.name.endswith("probabilities")][0]
            one = f"m{i}_class1"
            inits.append(numpy_helper.from_array(np.array([1], np.int64), one))
            out = f"m{i}_p_up"
            nodes.append(helper.make_node("Gather", [prob, one], [out], axis=1, name=f"m{i}_take_p_up"))
        else:
            out = m.graph.output[0].name
        wn = f"m{i}_weight"
        inits.append(numpy_helper.from_array(np.array([float(w)], np.float32), wn))
        nodes.append(helper.make_node("Mul", [out, wn], [f"m{i}_scaled"], name=f"m{i}_mul"))
        scaled.append(f"m{i}_scaled")
    nodes.append(helper.make_node("Sum", scaled, [OUTPUT_NAME], name="weighted_sum"))
    graph = helper.make_graph(
        nodes,
        "alphad_ensemble",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, F])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [None, 1])],
        initializer=inits,
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", TARGET_OPSET), helper.make_opsetid("ai.onnx.ml", ml_version)],
        producer_name="alphad.ops.export_onnx",
    )


def ensemble_to_onnx(ens: Ensemble, *, merge: bool | None = None) -> onnx.ModelProto:
    """One ONNX graph computing the ensemble's weighted sum.

    Parameters
    ----------
    ens : Ensemble
    merge : bool, optional
        Fuse all trees into one operator (regression members only).  Default:
        merge when every member is a regression model.

    Returns
    -------
    onnx.ModelProto
        Checked with ``onnx.checker``.
    """
    all_reg = not any(s.is_binary for s in ens.members)
    if merge is None:
        merge = all_reg
    if merge and not all_reg:
        raise ValueError("merge=True needs regression members only; the ensemble has binary members")
    model = _merged(ens) if merge else _combined(ens)
    onnx.checker.check_model(model)
    return model


def save_onnx(model: onnx.ModelProto, path: str | Path) -> str:
    """Write ``model`` to ``path``; return the file's sha256 (hex)."""
    data = model.SerializeToString()
    Path(path).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def make_session(model, *, threads: int = 1, providers: list[str] | None = None):
    """ORT session with pools of ``threads`` and sequential execution.

    Parameters
    ----------
    model : str, Path, bytes or onnx.ModelProto
    providers : list of str, optional
        Default ``["CPUExecutionProvider"]``.  The providers in use are
        checked: asking for CUDA and silently getting CPU raises.
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = threads
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if isinstance(model, onnx.ModelProto):
        model = model.SerializeToString()
    elif isinstance(model, Path):
        model = str(model)
    want = providers or ["CPUExecutionProvider"]
    sess = ort.InferenceSession(model, sess_options=so, providers=want)
    used = sess.get_providers()
    if used[0] != want[0]:
        raise RuntimeError(f"ONNX Runtime provider expected {want[0]}; was {used} (onnxruntime fell back)")
    return sess

