"""Layering at run time: the pipeline loads neither the UI nor torch; the UI uses qa's public names only.

The static import rules (textual only in tui/, index never imports qa, the CLI on top) are import-linter contracts
in pyproject.toml, checked by `lint-imports` in .ci/run.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _modules(package: str) -> list[Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no modules found in {package}/"
    return files


def test_importing_the_pipeline_does_not_load_textual():
    """Every module of qa/ and index/ imports without pulling in textual (the CLI imports tui only for chat)."""
    code = (
        "import importlib, pkgutil, sys\n"
        "for pkg in ('qa', 'index'):\n"
        "    mod = importlib.import_module(pkg)\n"
        "    for info in pkgutil.iter_modules(mod.__path__):\n"
        "        importlib.import_module(f'{pkg}.{info.name}')\n"
        "loaded = sorted(m for m in sys.modules if m == 'textual' or m.startswith(('textual.', 'tui')))\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


# qa names the UI may use: the public API of qa/__init__.py, plus the follow-up expansion and text helpers.
ALLOWED_QA_MODULES = {"qa", "qa.followup", "qa.render"}


@pytest.mark.parametrize("path", _modules("tui"), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_tui_uses_only_the_public_api(path):
    import qa

    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            top = node.module.split(".")[0]
            assert top != "index", f"{path.name} imports {node.module}: use qa's public API"
            if top == "qa":
                assert node.module in ALLOWED_QA_MODULES, f"{path.name} imports {node.module}"
                if node.module == "qa":
                    for alias in node.names:
                        assert alias.name in qa.__all__, f"{path.name} imports qa.{alias.name}, not public"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                assert alias.name.split(".")[0] != "index", f"{path.name} imports {alias.name}"
                if alias.name.startswith("qa."):
                    assert alias.name in ALLOWED_QA_MODULES, f"{path.name} imports {alias.name}"


def test_answering_never_imports_torch_sentence_transformers_or_onnx(seed_index, seed_settings):
    """The query path runs on onnxruntime alone: torch and sentence-transformers cost ~5.5 s to import, and the
    onnx package (~0.2 s) only made the shipped int8 query encoder (tests/test_install.py)."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from qa import Settings, answer, open_index\n"
        "settings = Settings(corpus=[Path(sys.argv[1])], index_dir=Path(sys.argv[2]))\n"
        "index = open_index(settings)\n"
        "for rerank in (True, False):\n"
        "    reply = answer('what army cap did Istanbul 2022 propose?', index,\n"
        "                   settings.model_copy(update={'rerank': rerank}))\n"
        "    assert reply.answered, reply\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'sentence_transformers', 'onnx'))\n"
        "assert not heavy, heavy[:10]\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(seed_settings.corpus[0]), str(seed_settings.index_dir)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
