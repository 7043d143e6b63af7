"""The thread count from the cores this process may use: affinity mask, cgroup v2 ``cpu.max`` and v1 CFS quota,
read from fake cgroup trees (tmp_path), and what ONNX Runtime sessions are given by default."""

from __future__ import annotations

from pathlib import Path

import pytest

from resnet_deploy.backends.cpus import affinity_count, cgroup_quota, cpu_budget


def v2_tree(tmp_path: Path, limits: dict[str, str], own: str = "/a/b") -> tuple[Path, Path]:
    """A cgroup v2 mount with ``cpu.max`` files at the given relative paths; the process sits in ``own``."""
    root = tmp_path / "cgroup"
    (root / own.strip("/")).mkdir(parents=True, exist_ok=True)
    for rel, text in limits.items():
        d = root / rel.strip("/")
        d.mkdir(parents=True, exist_ok=True)
        (d / "cpu.max").write_text(text + "\n")
    proc = tmp_path / "proc_cgroup"
    proc.write_text(f"0::{own}\n")
    return root, proc


def test_no_cgroup_limit_leaves_the_affinity_mask(tmp_path: Path) -> None:
    root, proc = v2_tree(tmp_path, {"/a/b": "max 100000"})
    budget = cpu_budget(root, proc, affinity=6)
    assert (budget.threads, budget.quota) == (6, None)
    assert "no cgroup CPU limit" in budget.describe()


def test_cgroup_v2_quota_caps_the_threads_rounded_up(tmp_path: Path) -> None:
    root, proc = v2_tree(tmp_path, {"/a/b": "150000 100000"})
    budget = cpu_budget(root, proc, affinity=16)
    assert budget.threads == 2 and budget.quota == pytest.approx(1.5)
    assert budget.source.endswith("a/b") and "1.5 CPUs" in budget.describe()


def test_a_parents_tighter_limit_binds_the_child(tmp_path: Path) -> None:
    root, proc = v2_tree(tmp_path, {"/a": "100000 100000", "/a/b": "400000 100000"})
    assert cpu_budget(root, proc, affinity=8).threads == 1


def test_affinity_below_the_quota_wins(tmp_path: Path) -> None:
    root, proc = v2_tree(tmp_path, {"/a/b": "800000 100000"})
    assert cpu_budget(root, proc, affinity=2).threads == 2


def test_garbage_and_missing_files_mean_no_limit(tmp_path: Path) -> None:
    root, proc = v2_tree(tmp_path, {"/a/b": "lots 0"})
    assert cgroup_quota(root, proc) == (None, "")
    assert cgroup_quota(tmp_path / "nowhere", tmp_path / "no_proc") == (None, "")
    assert cpu_budget(tmp_path / "nowhere", tmp_path / "no_proc", affinity=3).threads == 3


def test_cgroup_v1_cfs_quota(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    d = root / "cpu,cpuacct" / "docker" / "x"
    d.mkdir(parents=True)
    (d / "cpu.cfs_quota_us").write_text("200000\n")
    (d / "cpu.cfs_period_us").write_text("100000\n")
    (root / "cpu,cpuacct" / "cpu.cfs_quota_us").write_text("-1\n")  # the root: unlimited
    (root / "cpu,cpuacct" / "cpu.cfs_period_us").write_text("100000\n")
    proc = tmp_path / "proc_cgroup"
    proc.write_text("4:memory:/docker/x\n3:cpu,cpuacct:/docker/x\n0::/\n")
    budget = cpu_budget(root, proc, affinity=32)
    assert budget.threads == 2 and budget.quota == pytest.approx(2.0)


def test_this_machine_gives_at_least_one_thread() -> None:
    budget = cpu_budget()
    assert 1 <= budget.threads <= affinity_count()


def test_onnxruntime_sessions_default_to_the_budget_and_no_spinning(tmp_path: Path) -> None:
    from resnet_deploy.api import export_model
    from resnet_deploy.backends.onnxruntime import OnnxRuntimeModel

    path = export_model(weights="fmnist_resnet20", out=tmp_path / "m.onnx").path
    model = OnnxRuntimeModel(path)
    opts = model.session.get_session_options()
    assert opts.intra_op_num_threads == cpu_budget().threads == model.threads
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    spinning = OnnxRuntimeModel(path, threads=1, spinning=True)
    assert spinning.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert spinning.session.get_session_options().intra_op_num_threads == 1
