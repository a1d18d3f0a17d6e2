"""Each family's three modeling files are the same text written three ways: parallel by check.

The test reads ``modeling_pt.py``, ``modeling_tf.py`` and ``modeling_flax.py`` with ``ast`` (it imports no framework)
and lists their module-level classes and functions and each class's methods, normalized:
- the ``TF``/``Flax`` class-name prefixes go (``_TFBartLayer`` -> ``_BartLayer``);
- a Flax linen module merges into the model object whose ``module_class`` it is (``FlaxRobertaModule`` and
  ``FlaxRobertaModel`` -> ``RobertaModel``, methods of both);
- framework idioms get one name: ``call``/``__call__`` -> ``forward``, ``setup``/``build`` -> ``__init__``.
The three lists must be equal, up to the allow-lists below (framework idioms with no counterpart elsewhere).
Definition order is not compared: Flax must define its linen modules before the model objects that hold them.
"""

from __future__ import annotations

import ast
import fnmatch
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FRAMEWORKS = ("pt", "tf", "flax")
FAMILIES = ("roberta", "bart", "opt", "ibert", "encoder_heads")



def modeling_file(family: str, framework: str) -> Path:
    """A family's modeling file; "encoder_heads" is the trio of heads RoBERTa and I-BERT share (in common/)."""
    if family == "encoder_heads":
        return ROOT / "common" / f"encoder_heads_{framework}.py"
    return ROOT / family / f"modeling_{framework}.py"


# Allow-list keys are "<framework>: <pattern>", the pattern an fnmatch of a normalized entry ("Class",
# "Class.method" or "function()"); the value says in one line why the other frameworks have no counterpart.
IDIOMS = {  # in every family
    "pt: *.get_input_embeddings": "transformers' PyTorch API: tie_weights/resize_token_embeddings reach the table",
    "pt: *.get_output_embeddings": "transformers' PyTorch API: tie_weights/resize_token_embeddings reach the table",
    "tf: *.head_loss": "Keras fit() computes a head's loss from (targets, outputs) outside call()",
    "flax: *PreTrainedModel.__init__": "the Flax model object builds its linen module from the config and dtypes",
    "flax: *PreTrainedModel.forward": "the Flax model object's __call__ applies the module to its params",
    "flax: *PreTrainedModel.dummy_inputs": "Flax creates parameters by tracing the module on example inputs",
    "flax: *.init_weights": "Flax creates parameters with module.init from a random key",
    "flax: *LayerCollection": "a linen list attribute names children layer_0: a module names them layer.0",
    "flax: *LayerCollection.*": "(the methods of the Flax layer collection above)",
    "flax: _Block": "linen modules are dataclasses: one base holds the config and dtype fields",
    "flax: _Block._dense": "builds a sublayer from the dataclass fields (PyTorch/Keras pass them inline)",
    "flax: _Block._layer_norm": "builds a sublayer from the dataclass fields (PyTorch/Keras pass them inline)",
    "flax: _Block._embed": "builds a sublayer from the dataclass fields (PyTorch/Keras pass them inline)",
}
# Per family: each family's helper keeps its own entry, one line of reason each.
ALLOWED: dict[str, dict[str, str]] = {
    "roberta": {
    },
    "bart": {
        "flax: _Head": "linen heads share a base that names their base module (PyTorch/Keras bases provide it)",
        "flax: _Head.base_model": "linen heads share a base that names their base module (PyTorch/Keras bases provide it)",
        "flax: _Block._attention": "builds a sublayer from the dataclass fields (PyTorch/Keras pass them inline)",
        "flax: *.adapt_config": "the Flax model object sets on the config what PyTorch/Keras heads set in __init__",
        "flax: *.encode": "transformers' Flax API: encode() runs the encoder alone (PyTorch/Keras: get_encoder())",
        "flax: _base_of()": "the Flax model object reaches the encoder/decoder inside module.apply",
        "flax: BartForCausalLM.dummy_inputs": "Flax traces the module to create parameters: cross-attention needs states",
        "pt: *.get_encoder": "transformers' PyTorch/Keras API (a Flax model object runs encode() instead)",
        "tf: *.get_encoder": "transformers' PyTorch/Keras API (a Flax model object runs encode() instead)",
        "pt: *.get_decoder": "transformers' PyTorch/Keras API (a Flax model object reaches it in module.apply)",
        "tf: *.get_decoder": "transformers' PyTorch/Keras API (a Flax model object reaches it in module.apply)",
        "tf: *.inputs_from_targets": "Keras fit() passes labels as targets: decoder inputs are built from them",
        "tf: _BartStack.token_table": "Keras reads the shared table through a private attribute, so it has one path",
    },
    "opt": {
        "flax: _Head": "linen heads share a base that names their base module (PyTorch/Keras bases provide it)",
        "flax: _Head.base_model": "linen heads share a base that names their base module (PyTorch/Keras bases provide it)",
    },
    "ibert": {
        "pt: IBertForMaskedLM.forward": "transformers' IBert signature drops cross-attention (Flax: the model object's)",
        "tf: IBertForMaskedLM.forward": "transformers' IBert signature drops cross-attention (Flax: the model object's)",
        "pt: IBertPreTrainedModel.post_init": "PyTorch initializes the quantized blocks after construction",
        "pt: init_quant_block()": "PyTorch initializes the quantized blocks after construction",
        "tf: IBertPreTrainedModel.__init__": "Keras fixes the dtype at construction, so the float32 check runs there",
        "flax: IBertPreTrainedModel.*_stats": "Flax holds the quantization buffers in a second collection (quant_stats)",
        "flax: IBertPreTrainedModel._abstract_*": "Flax holds the quantization buffers in a second collection (quant_stats)",
        "flax: IBertPreTrainedModel.*_pretrained": "Flax holds the quantization buffers in a second collection (quant_stats)",
        "flax: IBertPreTrainedModel.numpy_weights": "Flax holds the quantization buffers in a second collection (quant_stats)",
        "flax: IBertPreTrainedModel.parameter_shapes": "Flax holds the quantization buffers in a second collection (quant_stats)",
        "flax: initial_quant_stats()": "Flax holds the quantization buffers in a second collection (quant_stats)",
        "tf: rows_in_range()": "compiled code cannot raise: rows with a bad index come out NaN (PyTorch raises)",
        "tf: nan_in_invalid_rows()": "compiled code cannot raise: rows with a bad index come out NaN (PyTorch raises)",
        "flax: rows_in_range()": "compiled code cannot raise: rows with a bad index come out NaN (PyTorch raises)",
        "flax: nan_in_invalid_rows()": "compiled code cannot raise: rows with a bad index come out NaN (PyTorch raises)",
    },
    "encoder_heads": {
        "tf: EncoderHead._word_embeddings": "Keras/linen LM heads read the tied word table (PyTorch ties lm_head.decoder)",
        "flax: EncoderHead._word_embeddings": "Keras/linen LM heads read the tied word table (PyTorch ties lm_head.decoder)",
        "flax: EncoderHead.base_model": "linen heads name their base submodule (PyTorch/Keras bases provide base_model)",
    },
}

FORWARD = {"forward", "call", "__call__"}
INIT = {"__init__", "setup", "build"}
PREFIX = re.compile(r"^(_?)(?:TF|Flax)(?=[A-Z_])")


def class_name(name: str) -> str:
    return PREFIX.sub(r"\1", name)


def method_name(name: str) -> str:
    if name in FORWARD:
        return "forward"
    return "__init__" if name in INIT else name


def _module_class(node: ast.ClassDef) -> tuple[str, bool] | None:
    """The class a Flax model object names as ``module_class`` and whether it is a plain (not annotated default)
    assignment."""
    for statement in node.body:
        if isinstance(statement, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "module_class" for t in statement.targets):
            value, plain = statement.value, True
        elif (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
              and statement.target.id == "module_class" and statement.value is not None):
            value, plain = statement.value, False
        else:
            continue
        if isinstance(value, ast.Name):
            return value.id, plain
    return None


def _module_owners(classes: list[ast.ClassDef]) -> dict[str, str]:
    """{linen module name: model object name}; a plain ``module_class = M`` wins over an annotated base default."""
    owners: dict[str, tuple[str, bool]] = {}
    for node in classes:
        found = _module_class(node)
        if found is None:
            continue
        module, plain = found
        if module not in owners or (plain and not owners[module][1]):
            owners[module] = (node.name, plain)
    defined = {node.name for node in classes}
    return {module: owner for module, (owner, _) in owners.items() if module in defined}


def structure(path: Path) -> set[str]:
    """The normalized entries of one modeling file: "Class", "Class.method" and "function()"."""
    tree = ast.parse(path.read_text(), filename=str(path))
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    owners = _module_owners(classes)
    entries: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            entries.add(f"{node.name}()")
        elif isinstance(node, ast.ClassDef):
            name = class_name(owners.get(node.name, node.name))
            entries.add(name)
            entries.update(f"{name}.{method_name(item.name)}" for item in node.body
                           if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)))
    return entries


def _allowances(family: str) -> dict[str, list[str]]:
    """{framework: [patterns]} of the idioms and the family's own entries."""
    patterns: dict[str, list[str]] = {fw: [] for fw in FRAMEWORKS}
    for key in (*IDIOMS, *ALLOWED[family]):
        framework, _, pattern = key.partition(": ")
        assert framework in FRAMEWORKS and pattern, f"allow-list key {key!r}: write '<pt|tf|flax>: <pattern>'"
        patterns[framework].append(pattern)
    return patterns


def _compared(family: str) -> dict[str, set[str]]:
    allowances = _allowances(family)
    compared = {}
    for fw in FRAMEWORKS:
        entries = structure(modeling_file(family, fw))
        compared[fw] = {e for e in entries if not any(fnmatch.fnmatchcase(e, p) for p in allowances[fw])}
    return compared


def difference_table(entries: dict[str, set[str]]) -> str:
    """One row per entry not in all three frameworks, with the frameworks that have it."""
    everything = set().union(*entries.values())
    rows = sorted(e for e in everything if not all(e in entries[fw] for fw in FRAMEWORKS))
    if not rows:
        return ""
    width = max(len(row) for row in rows)
    header = f"{'entry':<{width}}  " + "  ".join(f"{fw:<4}" for fw in FRAMEWORKS)
    lines = [header] + [
        f"{row:<{width}}  " + "  ".join(f"{(fw if row in entries[fw] else '-'):<4}" for fw in FRAMEWORKS)
        for row in rows]
    return "\n".join(lines)


@pytest.mark.parametrize("family", FAMILIES)
def test_modeling_files_are_parallel(family):
    table = difference_table(_compared(family))
    if table:
        pytest.fail(
            f"{family}: the three modeling files differ (normalized names; a row shows which frameworks define the "
            f"entry). Rename to one name, move shared plumbing to common/, or allow-list a genuine framework idiom "
            f"in tests/test_parallel_structure.py with a one-line reason:\n{table}", pytrace=False)


@pytest.mark.parametrize("family", FAMILIES)
def test_family_allow_list_entries_are_used(family):
    """A family's allow-list holds no stale entry (one that matches nothing in its framework's file)."""
    unused = []
    for key in ALLOWED[family]:
        framework, _, pattern = key.partition(": ")
        entries = structure(modeling_file(family, framework))
        if not any(fnmatch.fnmatchcase(e, pattern) for e in entries):
            unused.append(key)
    assert not unused, f"{family}: allow-list entries that match nothing (remove them): {unused}"


def test_idioms_are_used():
    """Each framework idiom in IDIOMS matches an entry of some family (no stale idiom)."""
    unused = []
    for key in IDIOMS:
        framework, _, pattern = key.partition(": ")
        if not any(fnmatch.fnmatchcase(e, pattern) for family in FAMILIES
                   for e in structure(modeling_file(family, framework))):
            unused.append(key)
    assert not unused, f"idioms that match no family (remove them): {unused}"


def test_normalization():
    """The normalization the comparison relies on."""
    assert class_name("TFRobertaModel") == "RobertaModel"
    assert class_name("_FlaxBartLayer") == "_BartLayer"
    assert class_name("TFOPTDecoder") == "OPTDecoder"
    assert class_name("Flaxen") == "Flaxen"
    assert {method_name(n) for n in ("forward", "call", "__call__")} == {"forward"}
    assert {method_name(n) for n in ("__init__", "setup", "build")} == {"__init__"}
    source = (
        "class FlaxXModule(nn.Module):\n    def setup(self): ...\n    def __call__(self): ...\n    def _a(self): ...\n"
        "class FlaxXPreTrainedModel:\n    module_class: type = FlaxXModule\n    def __call__(self): ...\n"
        "class FlaxX(FlaxXPreTrainedModel):\n    module_class = FlaxXModule\n    def __init__(self): ...\n"
        "def helper(): ...\n")
    tree = ast.parse(source)
    assert _module_owners([n for n in tree.body if isinstance(n, ast.ClassDef)]) == {"FlaxXModule": "FlaxX"}


def test_structure_of_a_file(tmp_path):
    path = tmp_path / "modeling_flax.py"
    path.write_text("class FlaxXModule:\n    def setup(self): ...\n    def _a(self): ...\n"
                    "class FlaxX:\n    module_class = FlaxXModule\n    def __call__(self): ...\n"
                    "def helper(): ...\n")
    assert structure(path) == {"X", "X.__init__", "X._a", "X.forward", "helper()"}
