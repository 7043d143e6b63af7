"""triton_repo: NVIDIA's repository layout, every config checked with Triton's proto, nothing written on failure."""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from resnet_deploy.errors import UserError
from resnet_deploy.serve import triton_repo
from resnet_deploy.serve.config import parse_config

pytest.importorskip("tritonclient.grpc", reason="tritonclient (with grpc) is not installed; setup.sh installs it")


def _config(repo: Path, folder: str, name: str = "config.pbtxt") -> object:
    return parse_config((repo / folder / name).read_text(), f"{folder}/{name}")


def test_the_layout_for_the_bundled_models(bundled_onnx: dict[str, Path], tmp_path: Path) -> None:
    from tritonclient.grpc import model_config_pb2 as pb2

    models = [bundled_onnx["fmnist_resnet20_fp32"], bundled_onnx["fmnist_resnet50_small_int8"]]
    repo = tmp_path / "repo"
    result = triton_repo(models, repo, instances=2, queue_delay_us=250)
    assert sorted(p.name for p in repo.iterdir()) == ["fmnist_resnet20_fp32", "fmnist_resnet50_small_int8"]
    folder = repo / "fmnist_resnet20_fp32"
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == [
        "1/model.onnx", "config.pbtxt", "configs/cpu.pbtxt", "labels.txt",
    ]  # fmt: skip
    assert (folder / "1/model.onnx").read_bytes() == models[0].read_bytes()
    assert (folder / "labels.txt").read_text().splitlines()[0] == "T-shirt/top"
    c = _config(repo, "fmnist_resnet20_fp32")
    assert c.name == "fmnist_resnet20_fp32" and c.platform == "onnxruntime_onnx" and c.max_batch_size == 32  # type: ignore[attr-defined]
    assert list(c.input[0].dims) == [1, 28, 28] and list(c.output[0].dims) == [10]  # type: ignore[attr-defined]
    assert c.output[0].label_filename == "labels.txt"  # type: ignore[attr-defined]
    assert list(c.dynamic_batching.preferred_batch_size) == [8, 32]  # type: ignore[attr-defined]
    assert c.dynamic_batching.max_queue_delay_microseconds == 250  # type: ignore[attr-defined]
    assert [(g.count, g.kind) for g in c.instance_group] == [(2, pb2.ModelInstanceGroup.KIND_GPU)]  # type: ignore[attr-defined]
    assert [w.batch_size for w in c.model_warmup] == [1, 32]  # type: ignore[attr-defined]
    cpu = _config(repo, "fmnist_resnet20_fp32", "configs/cpu.pbtxt")
    assert [g.kind for g in cpu.instance_group] == [pb2.ModelInstanceGroup.KIND_CPU]  # type: ignore[attr-defined]
    assert "500" not in (folder / "config.pbtxt").read_text().split("name:")[0]  # the comment states 250 us
    assert "250 us" in (folder / "config.pbtxt").read_text()
    assert result.model("fmnist_resnet50_small_int8").max_batch == 32
    assert json.loads(json.dumps(result.to_dict()))["models"][0]["files"][0] == "1/model.onnx"


def test_image_input_adds_a_preprocessing_ensemble(bundled_onnx: dict[str, Path], tmp_path: Path) -> None:
    from google.protobuf import json_format

    from resnet_deploy.serve.triton.preprocess import Preprocessing

    repo = tmp_path / "repo"
    triton_repo([bundled_onnx["fmnist_resnet20_int8"]], repo, image_input=True, max_batch=16)
    name = "fmnist_resnet20_int8"
    assert sorted(p.name for p in repo.iterdir()) == [name, f"{name}_image", f"{name}_preprocess"]
    pre = _config(repo, f"{name}_preprocess")
    assert pre.backend == "python" and pre.max_batch_size == 16  # type: ignore[attr-defined]
    assert list(pre.input[0].dims) == [-1, -1, -1] and list(pre.output[0].dims) == [1, 28, 28]  # type: ignore[attr-defined]
    # the parameters reach model.py as Triton passes them (the config as JSON)
    as_triton_passes_it = json_format.MessageToDict(pre, preserving_proto_field_name=True)  # type: ignore[arg-type]
    p = Preprocessing.from_parameters(as_triton_passes_it["parameters"])
    assert (p.input_size, p.channels, p.mean, p.std, p.dtype) == (28, 1, None, None, "float32")  # normalised in graph
    script = repo / f"{name}_preprocess" / "1" / "model.py"
    tree = ast.parse(script.read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "TritonPythonModel" in {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    assert not [m for m in imported if m.startswith("resnet_deploy")]  # runs where resnet-deploy is not installed
    ens = _config(repo, f"{name}_image")
    steps = [s.model_name for s in ens.ensemble_scheduling.step]  # type: ignore[attr-defined]
    assert ens.platform == "ensemble" and steps == [f"{name}_preprocess", name]  # type: ignore[attr-defined]
    assert (repo / f"{name}_image" / "1").is_dir() and (repo / f"{name}_image" / "labels.txt").is_file()


def test_a_plan_repository_from_a_full_tensorrt_sidecar(
    handwritten_engine: Callable[..., Path], tmp_path: Path
) -> None:
    """A sidecar claiming full TensorRT passes the protobuf and our checks: tensorrt_plan, KIND_GPU, profile max."""
    from tritonclient.grpc import model_config_pb2 as pb2

    engine = handwritten_engine(tmp_path, "r20.engine", profile=(1, 4, 16), labels=[f"c{i}" for i in range(10)])
    repo = tmp_path / "repo"
    triton_repo([engine], repo)
    folder = repo / "r20"
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == [
        "1/model.plan",
        "1/model.plan.json",
        "config.pbtxt",
        "labels.txt",
    ]  # fmt: skip  (no CPU variant: a plan needs its GPU)
    assert (folder / "1/model.plan").read_bytes() == engine.read_bytes()
    c = _config(repo, "r20")
    assert c.platform == "tensorrt_plan" and c.max_batch_size == 16  # type: ignore[attr-defined]
    assert list(c.dynamic_batching.preferred_batch_size) == [4, 16]  # type: ignore[attr-defined]
    assert [g.kind for g in c.instance_group] == [pb2.ModelInstanceGroup.KIND_GPU]  # type: ignore[attr-defined]
    text = (folder / "config.pbtxt").read_text()
    assert "TensorRT 10.13.0.35 on NVIDIA H100 80GB HBM3 (9.0)" in text and "one plan" in text


def test_nothing_is_written_when_any_model_fails(bundled_onnx: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    with pytest.raises(UserError, match="bad.onnx"):
        triton_repo([bundled_onnx["fmnist_resnet20_fp32"], tmp_path / "bad.onnx"], tmp_path / "repo")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.onnx"]  # no repository, no temporary folder


def test_destinations_and_options_are_checked(bundled_onnx: dict[str, Path], tmp_path: Path) -> None:
    model = bundled_onnx["fmnist_resnet20_fp32"]
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    cases = [
        (dict(models=[model], out=tmp_path / "full"), "already exists"),
        (dict(models=[model], out=tmp_path / "no" / "repo"), "does not exist"),
        (dict(models=[], out=tmp_path / "r"), "no models given"),
        (dict(models=[model, model], out=tmp_path / "r"), "would share a folder name"),
        (dict(models=[model], out=tmp_path / "r", instances=0), "--instances must be in [1, 64]"),
        (dict(models=[model], out=tmp_path / "r", queue_delay_us=-1), "--queue-delay-us must be in"),
        (dict(models=[model], out=tmp_path / "r", max_batch=0), "--max-batch must be in"),
    ]
    for kwargs, expected in cases:
        with pytest.raises(UserError) as exc:
            triton_repo(**kwargs)  # type: ignore[arg-type]
        assert expected in str(exc.value), (kwargs, exc.value)
    assert not (tmp_path / "r").exists()
    (tmp_path / "empty").mkdir()
    assert triton_repo([model], tmp_path / "empty").path == tmp_path / "empty"  # an empty folder is fine
    assert (tmp_path / "empty" / "fmnist_resnet20_fp32" / "config.pbtxt").is_file()
