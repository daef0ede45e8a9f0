"""The ONNX graph work of int8: pre-processing, ONNX Runtime's static quantization, what stays in float."""

from __future__ import annotations

import inspect
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ...models.onnx_model import HEATMAPS_NAME, INPUT_NAME
from ...utils.ort import session_options
from .calibration import CropSet, as_reader
from .settings import CALIBRATION_HELP, EXCLUSION_GROUPS, CalibrationDataRequired, QuantSettings, ort_method, ort_type

# ------------------------------------------------------------------------------------------ quantization


def preprocess(fp32_path: str | Path, out_path: str | Path, rewrite_deconv: bool = True) -> Path:
    """ONNX Runtime's quantization pre-processing: symbolic shape inference and graph optimisation (Conv+BN
    folding, constant folding), so that calibration sees the graph that will be quantized; then shared small
    initializers unshared and (``rewrite_deconv``) the head's deconvolution made a Conv + DepthToSpace."""

    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out_path = Path(out_path).resolve()
    src = str(Path(fp32_path).resolve())
    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="tpose-preprocess-") as tmp:
        os.chdir(tmp)  # a failed symbolic inference dumps sym_shape_infer_temp.onnx (+ 70 MB data) into the cwd
        try:
            quant_pre_process(src, str(out_path), skip_symbolic_shape=False)
        except Exception:  # noqa: BLE001 - ORT raises a bare Exception ("Incomplete symbolic shape inference")
            # the HRNet variants' upsampling defeats ORT's symbolic shape inference; ONNX's own suffices there
            quant_pre_process(src, str(out_path), skip_symbolic_shape=True)
        finally:
            os.chdir(here)
    proto = onnx.load(str(out_path))
    changed = _unshare_initializers(proto)
    if rewrite_deconv:
        changed += _deconv_to_conv(proto)
    if changed:
        onnx.save(proto, str(out_path))
    return out_path


def _deconv_to_conv(proto: Any) -> int:
    """Rewrite each 4x4 stride-2 pad-1 ConvTranspose (TransPose-R's head) as a 3x3 Conv to 4x the channels
    followed by DepthToSpace(2): the same function exactly, but ONNX Runtime has an int8 kernel for Conv and
    none for ConvTranspose, which otherwise stays float and took ~14 % of the int8 R-A4's time at 256x192.

    Output pixel (2i + a, 2j + b) of the deconvolution reads input rows i + d (d in -1, 0, 1) with kernel row
    ``kh = 2 * (-d) + a + 1`` where that lies in 0..3; the 3x3 kernel at (d + 1) of output channel
    ``o * 4 + a * 2 + b`` holds it (DepthToSpace's CRD order).
    """
    from onnx import helper, numpy_helper

    inits = {i.name: i for i in proto.graph.initializer}
    done = 0
    for idx, node in enumerate(list(proto.graph.node)):
        if node.op_type != "ConvTranspose" or node.input[1] not in inits:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if (list(attrs.get("strides", [1, 1])) != [2, 2] or list(attrs.get("pads", [0] * 4)) != [1, 1, 1, 1]
                or attrs.get("group", 1) != 1 or list(attrs.get("dilations", [1, 1])) != [1, 1]
                or any(attrs.get("output_padding", [0, 0])) or attrs.get("output_shape") or
                attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")):
            continue
        w = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)  # [C_in, C_out, 4, 4]
        if w.shape[2:] != (4, 4):
            continue
        c_in, c_out = w.shape[:2]
        wc = np.zeros((c_out, 2, 2, c_in, 3, 3), dtype=np.float32)
        for a in range(2):
            for dh in (-1, 0, 1):
                kh = -2 * dh + a + 1
                if not 0 <= kh <= 3:
                    continue
                for b in range(2):
                    for dw in (-1, 0, 1):
                        kw = -2 * dw + b + 1
                        if 0 <= kw <= 3:
                            wc[:, a, b, :, dh + 1, dw + 1] = w[:, :, kh, kw].T
        base = node.name or f"deconv{idx}"
        w_name = f"{base}_as_conv_W"
        proto.graph.initializer.append(numpy_helper.from_array(wc.reshape(c_out * 4, c_in, 3, 3), w_name))
        inputs = [node.input[0], w_name]
        if len(node.input) > 2 and node.input[2]:
            bias = numpy_helper.to_array(inits[node.input[2]]).astype(np.float32)
            b_name = f"{base}_as_conv_B"
            proto.graph.initializer.append(numpy_helper.from_array(np.repeat(bias, 4), b_name))
            inputs.append(b_name)
        mid = f"{base}_as_conv_output"
        conv = helper.make_node("Conv", inputs, [mid], name=f"{base}_as_conv", kernel_shape=[3, 3],
                                pads=[1, 1, 1, 1], strides=[1, 1])
        d2s = helper.make_node("DepthToSpace", [mid], list(node.output), name=f"{base}_depth_to_space",
                               blocksize=2, mode="CRD")
        position = list(proto.graph.node).index(node)
        proto.graph.node.remove(node)
        proto.graph.node.insert(position, d2s)
        proto.graph.node.insert(position, conv)
        done += 1
    if done:  # drop the deconvolutions' own weights when nothing else reads them
        used = {i for n in proto.graph.node for i in n.input}
        unused = [i for i in proto.graph.initializer if i.name not in used]
        for init in unused:
            proto.graph.initializer.remove(init)
    return done


def _unshare_initializers(proto: Any, max_bytes: int = 1 << 20) -> int:
    """Give every node its own copy of a (small) initializer that several nodes read; returns the copies made.

    Why: constant folding can leave one tensor serving as a convolution's bias and as an Add's input; the
    QOperator quantizer then writes it once as an int32 bias and feeds that to QLinearAdd too (an invalid
    graph, seen with onnxruntime 1.32 on the tiny test model).
    """
    from onnx import numpy_helper

    inits = {i.name: i for i in proto.graph.initializer}
    seen: dict[str, int] = {}
    copies = 0
    for node in proto.graph.node:
        for k, name in enumerate(node.input):
            if name not in inits:
                continue
            seen[name] = seen.get(name, 0) + 1
            arr = numpy_helper.to_array(inits[name])
            if seen[name] == 1 or arr.nbytes > max_bytes:
                continue
            new_name = f"{name}_copy{seen[name] - 1}"
            proto.graph.initializer.append(numpy_helper.from_array(arr, new_name))
            node.input[k] = new_name
            copies += 1
    return copies


def load_graph(path_or_proto: Any) -> Any:
    import onnx

    return onnx.load(str(path_or_proto)) if isinstance(path_or_proto, (str, Path)) else path_or_proto


def exclusion_groups(model: Any) -> dict[str, list[str]]:
    """Node names of the float-candidate groups of a (pre-processed) fp32 graph, see ``EXCLUSION_GROUPS``.

    ``final_conv``: the node producing the heatmaps; ``first_conv``: the convolution on the image;
    ``attention``: the softmaxes with the products of two activations around them (Q K^T and attention x V)
    and the scalings of q and k: one group, because the quantizer's exclusion only stops a node from
    quantizing its own inputs, so a Softmax between quantized MatMuls, or a MatMul of re-quantized q and k,
    would still run int8 (see :func:`float_nodes`); ``encoder_matmul``: products with a weight matrix
    (projections and feed-forward);
    ``residual_add``: additions of two activations (residual connections, position embedding).
    """

    graph = load_graph(model).graph
    consts = {i.name for i in graph.initializer}
    consts |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    producer = {o: n for n in graph.node for o in n.output}
    groups: dict[str, list[str]] = {g: [] for g in EXCLUSION_GROUPS}
    outputs = {o.name for o in graph.output}
    heat = HEATMAPS_NAME if HEATMAPS_NAME in outputs else graph.output[0].name
    node = producer.get(heat)
    while node is not None and node.op_type not in ("Conv", "ConvTranspose", "MatMul", "Gemm"):
        node = next((producer[i] for i in node.input if i in producer), None)  # walk back over reshapes etc.
    if node is not None:
        groups["final_conv"].append(node.name)
    for n in graph.node:
        acts = [i for i in n.input if i and i not in consts]
        if n.op_type == "Conv" and INPUT_NAME in n.input:
            groups["first_conv"].append(n.name)
        elif n.op_type == "Softmax":
            groups["attention"].append(n.name)
        elif n.op_type == "MatMul":
            groups["attention" if len(acts) == 2 else "encoder_matmul"].append(n.name)
        elif n.op_type == "Add" and len(acts) == 2:
            groups["residual_add"].append(n.name)
    # the attention products only stay float when the scalings feeding them do not re-quantize their inputs
    for name in list(groups["attention"]):
        node = next(n for n in graph.node if n.name == name)
        if node.op_type != "MatMul":
            continue
        for tensor in node.input:
            p = producer.get(tensor)
            while p is not None and p.op_type in ("Reshape", "Transpose", "Squeeze", "Unsqueeze"):
                p = producer.get(p.input[0])
            if p is not None and p.op_type in ("Mul", "Div") and p.name not in groups["attention"]:
                groups["attention"].append(p.name)
    return groups


def quantize_onnx(
    model_path: str | Path,
    out_path: str | Path,
    crops: np.ndarray | CropSet,
    settings: QuantSettings | None = None,
    calibration_cache: str | Path | None = None,
    batch_size: int = 16,
) -> Path:
    """One ``quantize_static`` run of a (pre-processed) fp32 graph with ``settings``.

    ``calibration_cache`` (a JSON path) keeps the measured activation ranges: a second call with the same
    graph and method skips calibration, which is what makes the float-node search affordable.
    """
    from onnxruntime.quantization import QuantFormat, quantize_static

    settings = settings or QuantSettings()
    images = crops.images if isinstance(crops, CropSet) else np.asarray(crops, np.float32)
    if images.ndim != 4 or len(images) == 0:
        raise CalibrationDataRequired(CALIBRATION_HELP)
    graph = load_graph(model_path)
    nodes = {n.name for n in graph.graph.node}
    unknown = [n for n in settings.exclude_nodes if n not in nodes]
    if unknown:
        raise ValueError(f"exclude_nodes names no node of {model_path}: {unknown[:5]}")
    exclude = list(settings.exclude_nodes)
    if settings.float_groups:
        groups = exclusion_groups(graph)
        exclude += [n for g in settings.float_groups for n in groups[g] if n not in exclude]
    exclude += [n.name for n in graph.graph.node if n.op_type in settings.exclude_op_types and n.name not in exclude]
    extra: dict[str, Any] = {}
    if settings.method == "percentile":
        extra["CalibPercentile"] = settings.percentile
    # the calibrators hold every intermediate tensor of every crop until the end (the histogram ones took > 20 GB
    # for 512 R-A4 crops and were killed): feed them in slices; ranges merge and histograms accumulate across
    # slices. (Not CalibMaxIntermediateOutputs: in onnxruntime 1.32 it drops the held batches without using them.)
    extra["CalibStridedMinMax"] = max(d for d in range(1, min(64, len(images)) + 1) if len(images) % d == 0)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # ``calibration_cache_path`` is recent (onnxruntime 1.32 has it); older versions calibrate on every call
    cache_option: dict[str, Any] = {}
    if calibration_cache is not None and "calibration_cache_path" in inspect.signature(quantize_static).parameters:
        cache_option["calibration_cache_path"] = str(calibration_cache)
    previous = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # ORT logs a warning per un-preprocessed graph / skipped tensor
    try:
        quantize_static(
            str(model_path), str(out_path), as_reader(images, batch_size),
            quant_format=QuantFormat.QDQ if settings.format == "qdq" else QuantFormat.QOperator,
            per_channel=settings.per_channel, reduce_range=settings.reduce_range,
            activation_type=ort_type(settings.activation_type), weight_type=ort_type(settings.weight_type),
            nodes_to_exclude=exclude, calibrate_method=ort_method(settings.method), extra_options=extra,
            **cache_option,
        )
    finally:
        logging.getLogger().setLevel(previous)
    if settings.float_softmax:
        import onnx

        proto = onnx.load(str(out_path))
        if float_softmax_inputs(proto):
            onnx.save(proto, str(out_path))
    return out_path


def float_softmax_inputs(proto: Any) -> int:
    """Remove the QuantizeLinear -> DequantizeLinear pair in front of every Softmax, so that ONNX Runtime runs
    the Softmax in float on the float output of its int8 Q K^T (MatMulIntegerToFloat) instead of fusing it into
    QLinearSoftmax; its output stays quantized for the int8 attention x V. Returns the Softmaxes changed."""
    graph = proto.graph
    producer = {o: n for n in graph.node for o in n.output}
    readers: dict[str, int] = {}
    for n in graph.node:
        for i in n.input:
            readers[i] = readers.get(i, 0) + 1
    graph_outputs = {o.name for o in graph.output}
    changed = 0
    for node in list(graph.node):
        if node.op_type != "Softmax":
            continue
        dq = producer.get(node.input[0])
        if dq is None or dq.op_type != "DequantizeLinear":
            continue
        qn = producer.get(dq.input[0])
        if qn is None or qn.op_type != "QuantizeLinear":
            continue
        node.input[0] = qn.input[0]
        changed += 1
        if readers.get(dq.output[0], 0) == 1 and dq.output[0] not in graph_outputs:
            graph.node.remove(dq)
            if readers.get(qn.output[0], 0) == 1 and qn.output[0] not in graph_outputs:
                graph.node.remove(qn)
    return changed


_FLOAT_COMPUTE = ("Conv", "FusedConv", "ConvTranspose", "MatMul", "FusedMatMul", "Gemm", "FusedGemm", "Softmax")


def runtime_graph(model_path: str | Path, level: str = "extended") -> Any:
    """The graph ONNX Runtime actually runs: ``model_path`` after its graph optimisations (``extended`` is the
    level that fuses DequantizeLinear -> op -> QuantizeLinear into QLinearConv / QLinearMatMul / ...)."""
    import onnx
    import onnxruntime as ort


    with tempfile.TemporaryDirectory(prefix="tpose-ortopt-") as tmp:
        opts = session_options(1, optimization=level)
        opts.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
        return onnx.load(opts.optimized_model_filepath)


def _compute_nodes(graph: Any) -> list[str]:
    """Names of the nodes that do arithmetic worth quantizing: Conv / ConvTranspose / MatMul / Gemm / Softmax
    and Add / Mul of two activations (a bias or scale read from a constant, even through DequantizeLinear, is not)."""
    consts = {i.name for i in graph.initializer} | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    consts |= {o for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in consts for o in n.output}
    names = []
    for n in graph.node:
        if n.op_type in ("Conv", "ConvTranspose", "MatMul", "Gemm", "Softmax"):
            names.append(n.name)
        elif n.op_type in ("Add", "Mul") and not any(i in consts for i in n.input):
            names.append(n.name)
    return names


_INT8_KERNELS = ("QLinearConv", "QLinearMatMul", "MatMulInteger", "MatMulIntegerToFloat", "ConvInteger",
                 "QLinearAdd", "QLinearMul", "QLinearSoftmax", "QGemm", "QLinearConvTranspose")


def float_nodes(int8_path: str | Path) -> list[str]:
    """Compute nodes of a quantized graph (:func:`_compute_nodes` of the file) that ONNX Runtime runs in float.

    Read off the optimised graph (:func:`runtime_graph`), where each int8 kernel keeps the name of the node it
    replaced: a node without one is float. The file alone does not tell: the quantizer's exclusion only stops
    a node from quantizing its own inputs, so an excluded Softmax between quantized MatMuls still becomes
    QLinearSoftmax, while a node wrapped in Q/DQ still runs in float on int8-rounded inputs where ONNX Runtime
    has no int8 kernel for it (ConvTranspose) or declines the fusion (the 3-channel first convolution here).
    """
    graph = load_graph(int8_path).graph
    int8 = {n.name for n in runtime_graph(int8_path).graph.node if n.op_type in _INT8_KERNELS}
    if not any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in graph.node):
        int8 |= {n.name for n in graph.node if n.op_type in _INT8_KERNELS}
    return [name for name in _compute_nodes(graph) if name not in int8]
