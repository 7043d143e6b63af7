"""The package's layers, checked on its import graph: no module imports from a layer above its own, and no modules
import each other in a circle. Function-level (lazy) imports count: they are dependencies all the same.

Lowest layer first (README's pipeline): base -> models, data -> export -> passes -> backends -> precision ->
build / evaluate / benchmark / inspection / infer / serve -> api -> cli.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "resnet_deploy"
LAYERS: list[set[str]] = [
    {"errors", "_io", "_version", "info", "onnx_scan", "onnx_io", "kernels"},
    {"models", "data"},
    {"export"},
    {"passes"},
    {"backends"},
    {"precision"},
    {"build", "evaluate", "compare", "benchmark", "inspection", "infer", "serve"},
    {"api", ""},  # "" is the package face, resnet_deploy/__init__.py
    {"cli", "__main__"},
]
# Within the lowest layers, what may not be imported at all, whatever the direction: data is torch-free.
SAME_LAYER_FORBIDDEN = {("data", "models"), ("models", "data")}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(current: str, is_package: bool, level: int, target: str | None) -> str:
    if level == 0:
        return target or ""
    base = current.split(".") if is_package else current.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def import_edges() -> dict[str, set[str]]:
    """module -> the package modules it imports (``from pkg import submodule`` points at the submodule)."""
    known = modules()
    edges: dict[str, set[str]] = {m: set() for m in known}
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node.level, node.module)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in known else base)
            for t in targets:
                if t in known and t != name:
                    edges[name].add(t)
                elif t.split(".")[0] == "resnet_deploy" and t not in known:
                    while t and t not in known:
                        t = t.rpartition(".")[0]
                    if t and t != name:
                        edges[name].add(t)
    return edges


def layer_of(module: str) -> tuple[int, str]:
    top = module.split(".")[1] if "." in module else ""
    for i, names in enumerate(LAYERS):
        if top in names:
            return i, top
    raise AssertionError(f"{module} is in no layer: add its top-level name to LAYERS")


def test_every_module_has_a_layer() -> None:
    for m in modules():
        layer_of(m)


def test_no_module_imports_from_a_layer_above_it() -> None:
    bad = []
    for src, targets in import_edges().items():
        (src_layer, src_top) = layer_of(src)
        for dst in targets:
            dst_layer, dst_top = layer_of(dst)
            if dst_layer > src_layer or (src_top, dst_top) in SAME_LAYER_FORBIDDEN:
                bad.append(f"{src} -> {dst}")
    assert not bad, "imports against the layers:\n" + "\n".join(sorted(bad))


def _circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_circles() -> None:
    circles = _circles(import_edges())
    assert not circles, f"modules that import each other: {circles}"


def test_the_checks_can_fail() -> None:
    """The circle finder and the layer check on a made-up graph: both must flag what they exist to flag."""
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer_of("resnet_deploy.passes.fold_bn")[0] < layer_of("resnet_deploy.backends.loader")[0]
    with pytest.raises(AssertionError, match="in no layer"):
        layer_of("resnet_deploy.nowhere")
    edges = import_edges()
    assert "resnet_deploy.onnx_io" in edges["resnet_deploy.backends.onnxruntime"]  # lazy imports are seen too
    assert "resnet_deploy.backends.tensorrt.compat" in edges["resnet_deploy.backends.tensorrt.builder"]
