"""Small ONNX graphs whose outputs are known tensors, in each supported detector layout.

Each graph takes an image ``[1, 3, H, W]`` and returns constants (plus zero times the image's
mean, so the input is really consumed): the post-processing can then be checked exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def constant_model(
    path: Path, outputs: list[np.ndarray], input_hw: tuple[int | str, int | str] = (640, 640)
) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
    ]
    initializers = [numpy_helper.from_array(np.zeros(1, np.float32), "zero")]
    graph_outputs = []
    for k, value in enumerate(outputs):
        initializers.append(numpy_helper.from_array(value.astype(np.float32), f"value{k}"))
        nodes.append(helper.make_node("Add", [f"value{k}", "nothing"], [f"output{k}"]))
        graph_outputs.append(
            helper.make_tensor_value_info(f"output{k}", TensorProto.FLOAT, list(value.shape))
        )
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, *input_hw])
    graph = helper.make_graph(nodes, "constant", [images], graph_outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def yolo_rows(rows: list[tuple[float, float, float, float, list[float]]]) -> np.ndarray:
    """``[1, 4 + C, N]``: one column per candidate (cx, cy, w, h in input px, C scores)."""
    table = np.array([[cx, cy, w, h, *scores] for cx, cy, w, h, scores in rows], np.float32)
    return table.T[None]


def write_labels(path: Path, labels: list[str]) -> Path:
    path.write_text("\n".join(labels) + "\n", encoding="utf-8")
    return path
