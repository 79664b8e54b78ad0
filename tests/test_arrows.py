"""The dependency arrows of the README's architecture drawing, checked by reading every import.

    talky  ->  telephony  ->  campaigns  ->  aioptions

A package imports only itself and the packages to its right; nothing in production imports
``tests``; the media core (telephony/sip, telephony/rtp, telephony/media, aioptions/codecs) imports
no Django and only the media modules below it. Lazy imports inside functions count too: an arrow
that points back up is a cycle whether it runs at import time or at the first call.

Pure ``ast`` over the source files — no Django set-up, no imports executed — so it runs in well
under a second and the drawing cannot silently go stale.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("aioptions", "campaigns", "telephony", "talky")  # each may import itself and those before it
DJANGO = ("django", "channels", "asgiref", "daphne")
# the Django-free media core, lowest first: what each may import from the project
CORE: dict[str, tuple[str, ...]] = {
    "aioptions.codecs": ("aioptions.codecs",),
    "telephony.sip": ("telephony.sip",),
    "telephony.rtp": ("telephony.rtp", "aioptions.codecs"),
    # logsafe.clip is plain Python (only redact() reads Django settings, lazily, for secret names)
    "telephony.media": ("telephony.media", "telephony.sip", "telephony.rtp", "aioptions.codecs",
                        "aioptions.logsafe"),
}
Edge = tuple[str, str]  # (importing module, imported module)


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in the file, with relative imports resolved."""
    mod = _module(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                out.add(".".join(base + ([node.module] if node.module else [])))
            else:
                out.add(node.module or "")
    return out


def project_edges() -> list[Edge]:
    edges = []
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            mod = _module(path)
            edges.extend((mod, target) for target in sorted(_imports(path)))
    return edges


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def violations(edges: list[Edge]) -> list[str]:
    """Each edge that breaks a rule of the drawing, said in words."""
    out = []
    for src, dst in edges:
        top_src, top_dst = src.split(".")[0], dst.split(".")[0]
        if top_dst == "tests":
            out.append(f"{src} imports {dst}: production code must not import tests/")
        if top_dst in LAYERS and LAYERS.index(top_dst) > LAYERS.index(top_src):
            out.append(f"{src} imports {dst}: {top_src} sits below {top_dst} (arrows point "
                       f"{' <- '.join(LAYERS)})")
        for core, allowed in CORE.items():
            if not _under(src, core):
                continue
            if top_dst in DJANGO:
                out.append(f"{src} imports {dst}: the media core is Django-free")
            elif top_dst in LAYERS and not any(_under(dst, a) for a in allowed):
                out.append(f"{src} imports {dst}: {core} may import only {', '.join(allowed)}")
    return out


def _package(module: str) -> str | None:
    """The sub-package a module sits in (``telephony.pipeline``), or None for a top-level file."""
    parts = module.split(".")
    if parts[0] not in LAYERS or len(parts) < 3:
        return None
    return ".".join(parts[:2]) if (ROOT / parts[0] / parts[1]).is_dir() else None


def package_cycles(edges: list[Edge]) -> list[list[str]]:
    """Sub-packages that import each other, directly or round a loop (Tarjan's strongly connected
    components over the package graph): such a pair cannot be read, tested or replaced alone."""
    graph: dict[str, set[str]] = {}
    for src, dst in edges:
        a, b = _package(src), _package(dst)
        if a and b and a != b:
            graph.setdefault(a, set()).add(b)
            graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_no_two_packages_import_each_other():
    assert package_cycles(project_edges()) == []


def test_the_cycle_check_finds_a_loop():
    """The pair issue 19 found last (the tool runner read the pipeline's clock and the webhook its
    config lookup, while the pipeline runs the tools), and a three-package loop."""
    assert package_cycles([("telephony.actions.runner", "telephony.pipeline.fillers"),
                           ("telephony.pipeline.turnloop", "telephony.actions.session")]) == [
        ["telephony.actions", "telephony.pipeline"]]
    assert package_cycles([("telephony.sip.a", "telephony.rtp.b"), ("telephony.rtp.b", "telephony.media.c"),
                           ("telephony.media.c", "telephony.sip.d")]) == [
        ["telephony.media", "telephony.rtp", "telephony.sip"]]


def test_the_code_follows_the_drawing():
    edges = project_edges()
    assert len(edges) > 500  # the scan really read the project
    assert violations(edges) == []


@pytest.mark.parametrize("edge, rule", [
    (("aioptions.views", "campaigns.models"), "aioptions sits below campaigns"),
    (("campaigns.admin", "telephony.models"), "campaigns sits below telephony"),
    (("telephony.media.gateway", "talky.logsafe"), "telephony sits below talky"),
    (("aioptions.bench.preview", "tests.fakes"), "must not import tests/"),
    (("telephony.rtp.session", "telephony.media.recording"), "telephony.rtp may import only"),
    (("telephony.media.outbound", "telephony.agents.greeting"), "telephony.media may import only"),
    (("telephony.sip.registrar", "django.conf"), "Django-free"),
    (("aioptions.codecs.g711", "aioptions.models"), "aioptions.codecs may import only"),
])
def test_each_rule_catches_the_arrow_it_forbids(edge, rule):
    """The rules can fail: every back-arrow that issue 19 found (and fixed) is caught again."""
    found = violations([edge])
    assert found and rule in found[0]


def test_relative_imports_are_resolved():
    assert "telephony.rtp.playout" in _imports(ROOT / "telephony/rtp/session.py")
    assert "telephony.bench" in _imports(ROOT / "telephony/bench/suite.py")  # `from . import OUT_DIR`
