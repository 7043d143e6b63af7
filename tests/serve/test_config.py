"""Configs are parsed with Triton's own model_config.proto, and the meaning errors Triton refuses are refused here."""

from __future__ import annotations

import pytest

from resnet_deploy.errors import UserError
from resnet_deploy.serve.config import Enum, check_config, comment, parse_config, render

pytest.importorskip("tritonclient.grpc", reason="tritonclient (with grpc) is not installed; setup.sh installs it")

GOOD = """
name: "m"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ { name: "input" data_type: TYPE_FP32 dims: [1, 28, 28] } ]
output [ { name: "logits" data_type: TYPE_FP32 dims: [10] label_filename: "labels.txt" } ]
dynamic_batching { preferred_batch_size: [4, 8] max_queue_delay_microseconds: 500 }
instance_group [ { count: 1 kind: KIND_CPU } ]
model_warmup [ { name: "w" batch_size: 1 inputs { key: "input" value { data_type: TYPE_FP32 dims: [1, 28, 28]
  zero_data: true } } } ]
"""


def _one_line(exc: pytest.ExceptionInfo[UserError]) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_a_good_config_passes_and_is_triton_s_message() -> None:
    config = check_config(GOOD, "m", files=["labels.txt"])
    from tritonclient.grpc import model_config_pb2

    assert isinstance(config, model_config_pb2.ModelConfig) and config.DESCRIPTOR.full_name == "inference.ModelConfig"
    assert config.max_batch_size == 8 and list(config.input[0].dims) == [1, 28, 28]
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (('name: "m"', 'name: "other"'), "name 'other' differs from its folder 'm'"),
        (("dims: [10]", ""), "output 'logits' has no dims"),
        (("dims: [1, 28, 28] }", "}"), "input 'input' has no dims"),
        (("preferred_batch_size: [4, 8]", "preferred_batch_size: [4, 16]"), "preferred batch size 16 is outside"),
        (("max_batch_size: 8", "max_batch_size: 0"), "dynamic batching needs max_batch_size > 0"),
        (("dims: [10]", "dims: [0]"), "output 'logits' has dims [0]"),
        (('label_filename: "labels.txt"', 'label_filename: "names.txt"'), "label file 'names.txt'"),
        (("batch_size: 1", "batch_size: 9"), "warm-up 'w' has batch_size 9, outside [1, 8]"),
        (('key: "input"', 'key: "image"'), "warm-up 'w' feeds 'image', which is not an input"),
        (("count: 1", "count: 0"), "instance group count 0 is below 1"),
        (('platform: "onnxruntime_onnx"', 'platform: "onnx"'), "platform 'onnx' is none of"),
    ],
)
def test_meaning_errors_are_refused_in_one_line(edit: tuple[str, str], expected: str) -> None:
    text = GOOD.replace(*edit)
    assert text != GOOD
    with pytest.raises(UserError) as exc:
        check_config(text, "m", files=["labels.txt"])
    line = _one_line(exc)
    assert expected in line and line.startswith("m/config.pbtxt: ") and "Triton would refuse it" in line


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("max_batch_size: 8", "max_batch: 8"), 'has no field named "max_batch"'),
        (("kind: KIND_CPU", "kind: KIND_TPU"), "KIND_TPU"),
        (("data_type: TYPE_FP32 dims: [10]", "data_type: FP32 dims: [10]"), "FP32"),
        (("dims: [1, 28, 28] }", "dims: [1, 28, 28]"), "not a valid Triton model configuration"),
    ],
)
def test_the_proto_refuses_syntax_unknown_fields_and_enums(edit: tuple[str, str], expected: str) -> None:
    text = GOOD.replace(*edit)
    assert text != GOOD and parse_config(GOOD, "m/config.pbtxt").name == "m"
    with pytest.raises(UserError) as exc:
        parse_config(text, "m/config.pbtxt")
    line = _one_line(exc)
    assert expected in line and "not a valid Triton model configuration" in line


def test_tensorrt_plans_cannot_run_on_cpu_instances() -> None:
    text = GOOD.replace("onnxruntime_onnx", "tensorrt_plan")
    with pytest.raises(UserError, match="a tensorrt_plan cannot run on KIND_CPU instances"):
        check_config(text, "m", files=["labels.txt"])
    check_config(text.replace("KIND_CPU", "KIND_GPU"), "m", files=["labels.txt"])


def test_ensembles_must_name_models_and_tensors_that_exist() -> None:
    model = check_config(GOOD, "m", files=["labels.txt"])
    ensemble = """
name: "e"
platform: "ensemble"
max_batch_size: 8
input [ { name: "x" data_type: TYPE_FP32 dims: [1, 28, 28] } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [10] } ]
ensemble_scheduling { step [ { model_name: "m" model_version: -1 input_map { key: "input" value: "x" }
  output_map { key: "logits" value: "y" } } ] }
"""
    check_config(ensemble, "e", models={"m": model})
    cases = [
        (('model_name: "m"', 'model_name: "n"'), "step model 'n' is not in the repository"),
        (('key: "input"', 'key: "pixels"'), "step 'm' has no input 'pixels'"),
        (('value: "x"', 'value: "z"'), "step 'm' reads 'z', which no earlier step produces"),
        (('value: "y"', 'value: "w"'), "output 'y' is produced by no step"),
        (("max_batch_size: 8", "max_batch_size: 16"), "max_batch_size 16 is above step 'm''s 8"),
    ]
    for edit, expected in cases:
        with pytest.raises(UserError, match=expected.replace("(", r"\(")):
            check_config(ensemble.replace(*edit), "e", models={"m": model})


def test_render_writes_text_the_proto_reads_back() -> None:
    from tritonclient.grpc import model_config_pb2

    fields = {
        "name": 'quote " and backslash \\',
        "platform": "onnxruntime_onnx",
        "max_batch_size": 4,
        "input": [{"name": "input", "data_type": Enum("TYPE_FP16"), "dims": [3, 224, 224]}],
        "output": [{"name": "logits", "data_type": Enum("TYPE_FP16"), "dims": [1000]}],
        "dynamic_batching": {"preferred_batch_size": [2, 4], "max_queue_delay_microseconds": 100},
        "parameters": [{"key": "k", "value": {"string_value": "v"}}],
    }
    text = comment("a comment\n\nlong " + "word " * 40) + render(fields)
    assert all(line.startswith("#") for line in text.splitlines()[:4]) and max(map(len, text.splitlines())) <= 120
    config = parse_config(text, "t")
    assert config.name == fields["name"] and list(config.input[0].dims) == [3, 224, 224]
    assert config.input[0].data_type == model_config_pb2.TYPE_FP16
    assert config.parameters["k"].string_value == "v"
