"""The installable package: namespace layout of the built wheel, lazy imports, clear missing-framework errors."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env},
                          cwd=ROOT.parent)


def test_wheel_holds_only_the_rosettazoo_namespace(tmp_path):
    pytest.importorskip("build")
    result = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (wheel,) = tmp_path.glob("rosettazoo-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"rosettazoo"}
    for module in ("rosettazoo/common/config.py", "rosettazoo/conversion/convert.py", "rosettazoo/roberta/config.py",
                   "rosettazoo/roberta/modeling_pt.py", "rosettazoo/roberta/modeling_tf.py",
                   "rosettazoo/roberta/modeling_flax.py", "rosettazoo/ibert/quant.py", "rosettazoo/ibert/modeling_flax.py",
                   "rosettazoo/generation/decoding.py", "rosettazoo/generation/mixin_flax.py", "rosettazoo/demo.py",
                   "rosettazoo/bundled.py"):
        assert module in names
    assert not any(name.startswith("tests/") for name in names)


def test_family_import_loads_no_framework():
    result = run_python(
        "import sys, rosettazoo.roberta as r, rosettazoo.generation as g; r.RobertaConfig(); r.RobertaTokenizer;"
        "g.GenerationConfig(); g.TextStreamer;"
        "print(sorted(m for m in ('torch', 'tensorflow', 'jax', 'flax', 'keras') if m in sys.modules))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "name, framework",
    [("RobertaModel", "torch"), ("TFRobertaModel", "tensorflow"), ("FlaxRobertaModel", "flax")],
)
def test_each_framework_class_imports_only_its_framework(name, framework):
    # TensorFlow itself imports jax when it is installed (tf.lite), so compare with what the framework alone loads.
    result = run_python(
        "import sys\n"
        "others = lambda: sorted(m for m in ('torch', 'tensorflow', 'jax', 'flax') if m in sys.modules)\n"
        f"import {framework}\n"
        "alone = others()\n"
        f"import rosettazoo.roberta as r; r.{name}\n"
        "print(alone == others(), others())"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("True"), result.stdout


@pytest.mark.parametrize(
    "name, blocked, extra",
    [("RobertaModel", "torch", "torch"), ("TFRobertaModel", "tensorflow", "tf"), ("FlaxRobertaModel", "jax", "flax")],
)
def test_missing_framework_names_the_extra(name, blocked, extra):
    result = run_python(
        f"import sys; sys.modules[{blocked!r}] = None\n"
        f"import rosettazoo.roberta as r\n"
        f"try:\n    r.{name}\nexcept ImportError as err:\n    print(err)\n"
    )
    assert result.returncode == 0, result.stderr
    assert f'pip install "rosettazoo[{extra}]"' in result.stdout


def test_tf_classes_refuse_another_keras_backend():
    result = run_python(
        "import rosettazoo.roberta as r\ntry:\n    r.TFRobertaModel\nexcept ImportError as err:\n    print(err)\n",
        KERAS_BACKEND="jax",
    )
    assert result.returncode == 0, result.stderr
    assert "KERAS_BACKEND=tensorflow" in result.stdout


@pytest.mark.parametrize("family", ["roberta", "bart", "opt", "ibert"])
def test_every_exported_name_resolves(family):
    result = run_python(f"import rosettazoo.{family} as m\nfor name in m.__all__:\n    getattr(m, name)\nprint(len(m.__all__))")
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout) > 0
