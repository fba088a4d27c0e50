"""The package's layers, read from the source (every import statement, also those inside
functions, and importlib.import_module with a literal name):

    Snakemake rules -> stages/ -> data/ features/ mining/ methods/ evaluation/ plots/ -> io log codes ...

- a stage never imports another stage (stages/common.py holds their shared helpers);
- data/ and evaluation/ never import methods/;
- no library package imports stages/ or the orchestration modules (cli, workflow, ...);
- features/ and mining/ never import methods/;
- the bottom modules (io, log, codes, provenance, machine, device) import only
  each other;
- params (the configuration: it checks experiments against the committed split
  protocols) sits between the library and the stages: it may import data/ but never
  methods/ or orchestration.
"""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import ROOT

SRC = ROOT / "src" / "pseudosup"
BOTTOM = {"io", "log", "codes", "provenance", "machine", "device"}
CONFIG = {"params"}
LIBRARY = {"data", "features", "mining", "methods", "evaluation", "plots"}
ORCHESTRATION = {"stages", "cli", "workflow", "dvcgen", "gate"}
STAGE_HELPERS = {"pseudosup.stages.common"}


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, src: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every module `path` imports from the package;
    `from pkg import name` counts as pkg.name (a submodule, or a name in pkg)."""
    mod = module_name(path, src)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    root = src.name
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out += [(node.lineno, f"{target}.{a.name}") for a in node.names]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            out.append((node.lineno, node.args[0].value))
    return [(line, name) for line, name in out if name == root or name.startswith(root + ".")]


def part(name: str, src: Path) -> str:
    """The top-level part of the package a module belongs to: 'stages', 'io', ...; ''
    for the package itself (`from pseudosup import code_version`)."""
    bits = name.split(".")
    top = bits[1] if len(bits) > 1 else ""
    return top if (src / top).is_dir() or (src / f"{top}.py").is_file() else ""


def violations(src: Path = SRC) -> list[str]:
    found = []
    for path in sorted(src.rglob("*.py")):
        mod = module_name(path, src)
        here = part(mod, src)
        for line, name in imports(path, src):
            there = part(name, src)
            rule = None
            if here == "stages" and there == "stages" and name != "pseudosup.stages" \
                    and not any(name == h or name.startswith(h + ".") for h in STAGE_HELPERS):
                rule = "a stage imports another stage"
            elif here in ("data", "evaluation") and there == "methods":
                rule = f"{here}/ imports methods/"
            elif here in LIBRARY and there in ORCHESTRATION:
                rule = f"library code ({here}/) imports {there}"
            elif here in ("features", "mining") and there == "methods":
                rule = f"{here}/ imports methods/"
            elif here in CONFIG and there in ORCHESTRATION | {"methods"}:
                rule = f"configuration module {here} imports {there}"
            elif here in BOTTOM and there not in BOTTOM and there != "":
                rule = f"bottom module {here} imports {there}"
            if rule:
                found.append(f"{path.relative_to(src.parent)}:{line}: {rule} ({name})")
    return found


def test_the_package_keeps_its_layers():
    found = violations()
    assert not found, "layering violations (see docs/DEVELOPING.md):\n" + "\n".join(found)


def test_the_check_catches_each_kind_of_violation(tmp_path):
    """The checker itself: a small package breaking each rule once (relative and absolute
    imports, imports inside functions, importlib with a literal name)."""
    src = tmp_path / "pseudosup"
    files = {
        "__init__.py": "",
        "io.py": "def f():\n    from .data import splits\n",
        "codes.py": "from . import io\n",
        "stages/__init__.py": "",
        "stages/common.py": "",
        "stages/a.py": "from .common import x\nfrom ..methods import models\n",
        "stages/b.py": "def run():\n    from .a import run\n",
        "data/__init__.py": "",
        "data/splits.py": "from pseudosup.methods.hashing import dsrh_data\n",
        "evaluation/ranking.py": "import importlib\nm = importlib.import_module('pseudosup.methods.codes')\n",
        "mining/knn.py": "from ..stages import common\n",
        "methods/__init__.py": "",
        "methods/models.py": "from ..data import splits\nfrom .. import codes\n",
    }
    for name, text in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(text)
    found = "\n".join(violations(src))
    assert "pseudosup/io.py:2: bottom module io imports data" in found
    assert "pseudosup/stages/b.py:2: a stage imports another stage (pseudosup.stages.a.run)" in found
    assert "pseudosup/data/splits.py:1: data/ imports methods/" in found
    assert "pseudosup/evaluation/ranking.py:2: evaluation/ imports methods/" in found
    assert "pseudosup/mining/knn.py:1: library code (mining/) imports stages" in found
    assert len(found.splitlines()) == 5, found  # stages -> common, stages -> methods, methods -> data are fine
