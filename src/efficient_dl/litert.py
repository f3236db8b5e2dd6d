"""Converted models (``.tflite``) run with LiteRT, the runtime TensorFlow Lite became.

Chapters 07-10 convert Keras models with ``tf.lite.TFLiteConverter`` and run the result
with ``ai_edge_litert.interpreter.Interpreter`` (``tf.lite.Interpreter`` is deprecated and
will be removed). What a student must learn to write (the converter's settings, the
representative dataset) stays in the notebooks; this module only converts quietly, runs,
scores and times a converted model, and reads back what was quantized.

A model here is the bytes ``converter.convert()`` returns (or a path to a ``.tflite`` file).
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import zlib
from pathlib import Path

import numpy as np

# The operations whose input 1 is a weight tensor (and input 2 a bias, when present).
WEIGHTED_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL"}


def convert(converter) -> bytes:
    """``converter.convert()``, without the chatter: the converter prints its SavedModel's
    signature on stdout and its quantization settings on stderr (which would make nbgrader
    score a test cell 0); real errors still raise."""
    import tensorflow as tf

    from efficient_dl.quiet import filtered_stderr

    # In a notebook TensorFlow's Python logger says INFO ("Assets written to ...") on stdout and
    # stderr for every SavedModel the converter writes, whatever was set before it loaded.
    tf.get_logger().setLevel("ERROR")
    with filtered_stderr(), contextlib.redirect_stdout(io.StringIO()):
        return converter.convert()


def model_bytes(model: bytes | str | os.PathLike) -> bytes:
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    return Path(model).read_bytes()


def interpreter(model, num_threads: int = 1, delegate: bool = True):
    """A LiteRT interpreter for ``model``, tensors allocated. One thread by default, so that
    every variant is timed on the same share of the machine.

    ``delegate=False`` runs LiteRT's own kernels instead of handing the graph to XNNPACK, which
    repacks a float model's weights and leaves their tensors empty: for reading weights back."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from efficient_dl.quiet import filtered_stderr

    resolver = OpResolverType.AUTO if delegate else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    with filtered_stderr():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
        runner = Interpreter(model_content=model_bytes(model), num_threads=num_threads,
                             experimental_op_resolver_type=resolver)
        runner.allocate_tensors()
    return runner


def _quantize_input(x, detail) -> np.ndarray:
    dtype = detail["dtype"]
    scale, zero_point = detail["quantization"]
    if np.issubdtype(dtype, np.integer) and scale != 0:  # quantized; integer inputs such as word ids have scale 0
        info = np.iinfo(dtype)
        return np.clip(np.round(np.asarray(x, np.float32) / scale) + zero_point, info.min, info.max).astype(dtype)
    return np.asarray(x, dtype=dtype)


def _dequantize_output(y, detail) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if np.issubdtype(detail["dtype"], np.integer) and scale != 0:
        return (y.astype(np.float32) - zero_point) * scale
    return y.astype(np.float32)


def predict(model, x, batch_size: int = 256, num_threads: int = 1) -> np.ndarray:
    """The model's float outputs for ``x`` (float inputs, as the Keras model takes them).

    An integer-only model's input is quantized and its output dequantized with the scale
    and zero point stored in the file, so every variant is scored on the same inputs.
    """
    runner = model if hasattr(model, "invoke") else interpreter(model, num_threads)
    x = np.asarray(x)
    input_detail, output_detail = runner.get_input_details()[0], runner.get_output_details()[0]
    outputs, current = [], None
    for start in range(0, len(x), batch_size):
        batch = x[start:start + batch_size]
        if current != len(batch):  # resize only when the batch shape changes
            runner.resize_tensor_input(input_detail["index"], [len(batch), *x.shape[1:]])
            runner.allocate_tensors()
            input_detail, output_detail = runner.get_input_details()[0], runner.get_output_details()[0]
            current = len(batch)
        runner.set_tensor(input_detail["index"], _quantize_input(batch, input_detail))
        runner.invoke()
        outputs.append(_dequantize_output(runner.get_tensor(output_detail["index"]), output_detail))
    return np.concatenate(outputs)


def accuracy(model, x, y, batch_size: int = 256) -> float:
    """Share of ``x`` whose largest output is the label ``y``."""
    return float(np.mean(np.argmax(predict(model, x, batch_size), axis=1) == np.asarray(y)))


def latency(model, example, warmup: int | None = None, repeats: int | None = None, num_threads: int = 1):
    """``measure.measure_latency`` of one ``invoke()`` on ``example`` (a batch, often of one),
    input already set: the time of the model itself, not of Python's copying around it."""
    from efficient_dl import measure

    runner = interpreter(model, num_threads)
    example = np.asarray(example)
    detail = runner.get_input_details()[0]
    runner.resize_tensor_input(detail["index"], list(example.shape))
    runner.allocate_tensors()
    detail = runner.get_input_details()[0]
    runner.set_tensor(detail["index"], _quantize_input(example, detail))
    return measure.measure_latency(runner.invoke, warmup=warmup, repeats=repeats, batch_size=len(example))


@dataclasses.dataclass(frozen=True)
class TensorTypes:
    """What a converted model computes in: its input, its output, its weights and biases."""

    input: str
    output: str
    weights: dict[str, str]  # weight tensor name -> NumPy dtype name
    biases: dict[str, str]  # int32 in an integer-only model: they add to int32 accumulators

    @property
    def weight_dtypes(self) -> set[str]:
        return set(self.weights.values())


def tensor_types(model) -> TensorTypes:
    """The dtypes of ``model``'s input, output, weights and biases (inputs 1 and 2 of every
    convolution and matrix product), read from the interpreter: proof of what was quantized."""
    runner = interpreter(model, delegate=False)
    tensors = {detail["index"]: detail for detail in runner.get_tensor_details()}
    found = {1: {}, 2: {}}
    operations = runner._get_ops_details()  # the only way LiteRT's Python API lists the graph
    # float16 weights are stored as float16 and widened by a DEQUANTIZE op before each use:
    # the stored tensor is that op's input.
    stored = {int(op["outputs"][0]): int(op["inputs"][0]) for op in operations if op["op_name"] == "DEQUANTIZE"}
    for op in operations:
        if op["op_name"] in WEIGHTED_OPS:
            for position, index in enumerate(list(op["inputs"])[1:3], start=1):
                index = stored.get(int(index), int(index))
                if index >= 0 and index in tensors:
                    found[position][tensors[index]["name"]] = np.dtype(tensors[index]["dtype"]).name
    return TensorTypes(input=np.dtype(runner.get_input_details()[0]["dtype"]).name,
                       output=np.dtype(runner.get_output_details()[0]["dtype"]).name,
                       weights=found[1], biases=found[2])


def quantization_of(model, tensor_name: str) -> tuple[np.ndarray, np.ndarray, int]:
    """``(scales, zero_points, quantized_dimension)`` that the converter stored for a tensor
    (one scale per tensor, or one per output channel)."""
    runner = interpreter(model, delegate=False)
    for detail in runner.get_tensor_details():
        if detail["name"] == tensor_name:
            parameters = detail["quantization_parameters"]
            return parameters["scales"], parameters["zero_points"], int(parameters["quantized_dimension"])
    raise KeyError(f"no tensor named {tensor_name!r}; the model has {[d['name'] for d in runner.get_tensor_details()]}")


def weight_values(model, tensor_name: str) -> np.ndarray:
    """The stored (quantized) values of a weight tensor, as the file holds them."""
    runner = interpreter(model, delegate=False)
    for detail in runner.get_tensor_details():
        if detail["name"] == tensor_name:
            return np.array(runner.get_tensor(detail["index"]))
    raise KeyError(f"no tensor named {tensor_name!r}")


def size_bytes(model) -> int:
    return len(model_bytes(model))


def gzip_size_bytes(model) -> int:
    """The file gzipped at level 9 (as ``measure.gzip_size_bytes`` does for files)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    return len(compressor.compress(model_bytes(model)) + compressor.flush())
