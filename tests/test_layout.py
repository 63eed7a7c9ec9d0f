"""The layout rules of docs/architecture.md, checked on the source (parsed with ``ast``, nothing imported).

* the modules of ``evtools`` import each other without a cycle, counting
  imports inside functions, and never through the package ``__init__``
  (a hidden import: ``from . import fit_tails`` resolves lazily);
* adapters and benchmarks use only public names of ``evtools``;
* ``evtools`` never imports a deep-learning framework or an adapter;
* no function body is copied between the PyTorch and the JAX adapter.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("torch", "jax", "jaxlib", "flax", "evtools_torch", "evtools_jax", "tensorflow", "keras")


def _module_name(path, base):
    parts = list(path.relative_to(base).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path, module):
    """``(imported module, names)`` of every import statement in ``path``, relative ones made absolute."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            yield target, tuple(alias.name for alias in node.names)


def _evtools_modules():
    return {_module_name(p, ROOT): p for p in sorted((ROOT / "evtools").rglob("*.py"))}


def import_graph():
    """Module -> set of evtools modules it imports (``from pkg import sub`` counts as importing ``pkg.sub``)."""
    modules = _evtools_modules()
    graph = {}
    for module, path in modules.items():
        edges = set()
        for target, names in _imports(path, module):
            if not (target == "evtools" or target.startswith("evtools.")):
                continue
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
            edges.update(subs or [target])
            if len(subs) < len(names) and subs:  # names and submodules mixed: the package too
                edges.add(target)
        graph[module] = edges - {module}
    return graph


def find_cycle(graph):
    """One cycle of ``graph`` as a list of nodes (first repeated last), or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_evtools_modules_import_without_cycles():
    graph = import_graph()
    assert "evtools.tails" in graph and "evtools._dask" in graph["evtools.tails"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def _lazy_exports():
    """The public names ``evtools/__init__`` imports on first use (the keys of its ``_EXPORTS``)."""
    for node in ast.parse((ROOT / "evtools" / "__init__.py").read_text(encoding="utf-8")).body:
        if isinstance(node, ast.AnnAssign | ast.Assign) and "_EXPORTS" in ast.unparse(node).split("=")[0]:
            return set(ast.literal_eval(node.value))
    raise AssertionError("evtools/__init__.py has no _EXPORTS")


def test_submodules_never_import_through_the_package():
    """``from . import fit_tails`` in a submodule goes through the lazy ``evtools/__init__``: a hidden import."""
    lazy = _lazy_exports()
    assert "fit_tails" in lazy
    hidden = []
    for module, path in _evtools_modules().items():
        for target, names in _imports(path, module):
            if module != "evtools" and target == "evtools" and lazy & set(names):
                hidden.append(f"{module}: {sorted(lazy & set(names))}")
    assert hidden == [], f"import from the defining submodule instead: {hidden}"


def _files(*folders):
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("folder", ["adapters", "benchmarks"])
def test_adapters_and_benchmarks_use_public_names_only(folder):
    bad = []
    for path in _files(folder):
        for target, names in _imports(path, _module_name(path, path.parent)):
            if not (target == "evtools" or target.startswith("evtools.")):
                continue
            private = [p for p in target.split(".") if p.startswith("_")] + [n for n in names if n.startswith("_")]
            if private:
                bad.append(f"{path.relative_to(ROOT)}: {target} {private}")
    assert bad == [], "use the public toolkit evtools.adapter instead:\n" + "\n".join(bad)


def test_core_never_imports_a_framework_or_an_adapter():
    bad = []
    for module, path in _evtools_modules().items():
        for target, _ in _imports(path, module):
            if target.split(".")[0] in FRAMEWORKS:
                bad.append(f"{module}: {target}")
    assert bad == []


def _normalised_functions(path, base=ROOT):
    """Function name -> ``ast.dump`` of its body without the docstring, for bodies of 3+ statements."""
    out = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                body = body[1:]
            if len(body) >= 3 or sum(1 for _ in ast.walk(ast.Module(body=body, type_ignores=[]))) >= 40:
                dump = ast.dump(ast.Module(body=body, type_ignores=[]), annotate_fields=False)
                out[dump] = f"{path.relative_to(base)}:{node.lineno} {node.name}"
    return out


def test_no_function_body_copied_between_adapters():
    torch_bodies, jax_bodies = {}, {}
    for path in _files("adapters/evtools_torch"):
        torch_bodies.update(_normalised_functions(path))
    for path in _files("adapters/evtools_jax"):
        jax_bodies.update(_normalised_functions(path))
    copies = sorted(f"{torch_bodies[d]} == {jax_bodies[d]}" for d in torch_bodies.keys() & jax_bodies.keys())
    assert copies == [], "move the shared helper into evtools.adapter:\n" + "\n".join(copies)


def test_copy_detection_can_fail(tmp_path):
    code = 'def f(x):\n    """doc"""\n    a = x + 1\n    b = a * 2\n    return a, b\n'
    (tmp_path / "one.py").write_text(code)
    (tmp_path / "two.py").write_text(code.replace("def f", "def g").replace('"""doc"""', '"""other doc"""'))
    one, two = (_normalised_functions(tmp_path / name, tmp_path) for name in ("one.py", "two.py"))
    assert one.keys() == two.keys() and len(one) == 1
