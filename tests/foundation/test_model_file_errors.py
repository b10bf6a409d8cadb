"""Every broken model file is one paragraph and exit code 2, never a traceback."""

from __future__ import annotations

import pytest

from alignguard.errors import ModelFileError
from alignguard.modelfile.loader import load_model_file

GOOD_REST = """
import torch
def build_model():
    return torch.nn.Linear(2, 1)
def example_batch(batch_size, seed):
    return {"input": torch.zeros(batch_size, 2), "y": torch.zeros(batch_size)}
def loss_terms(model, batch, outputs, step):
    return {"mse": ((outputs.squeeze(-1) - batch["y"]) ** 2).mean()}
"""


def test_missing_file():
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model_file("/no/such/model.py")


def test_import_error_names_file_and_line(write):
    path = write("broken.py", "import torch\n\nx = 1\nraise RuntimeError('boom at import')\n")
    with pytest.raises(ModelFileError) as info:
        load_model_file(path)
    assert "RuntimeError: boom at import" in info.value.what
    assert info.value.where == f"{path}:4"


def test_syntax_error_names_line(write):
    path = write("syntax.py", "def build_model(:\n    pass\n")
    with pytest.raises(ModelFileError) as info:
        load_model_file(path)
    assert "syntax error" in info.value.what and info.value.where.startswith(f"{path}:1:")


def test_missing_package_suggests_install(write):
    path = write("needs.py", "import not_a_real_package_xyz\n")
    with pytest.raises(ModelFileError) as info:
        load_model_file(path)
    assert "ModuleNotFoundError" in info.value.what and "install" in info.value.fix


def test_missing_entry_point_lists_what_is_defined(write):
    path = write("partial.py", GOOD_REST.replace("def loss_terms", "def my_losses"))
    with pytest.raises(ModelFileError) as info:
        load_model_file(path)
    assert "no function `loss_terms`" in info.value.what
    assert "my_losses" in info.value.fix and "build_model" in info.value.fix


def test_build_model_must_return_a_module(write):
    path = write("notmodule.py", GOOD_REST.replace("return torch.nn.Linear(2, 1)", "return 'a model'"))
    model_file = load_model_file(path)
    with pytest.raises(ModelFileError, match="returned str, not a torch.nn.Module"):
        model_file.build()


def test_example_batch_missing_a_forward_argument(write):
    path = write("nobatch.py", GOOD_REST.replace('"input"', '"inputs"'))
    model_file = load_model_file(path)
    model = model_file.build()
    with pytest.raises(ModelFileError) as info:
        model_file.batch(model, 4, 0)
    assert "forward needs 'input'" in info.value.what


def test_sibling_imports_work_and_path_is_restored(write):
    import sys

    write("pkgdir/helpers.py", "WIDTH = 2\n")
    path = write("pkgdir/model.py", "from helpers import WIDTH\n" + GOOD_REST)
    before = list(sys.path)
    model_file = load_model_file(path)
    assert model_file.module.WIDTH == 2
    assert sys.path == before


def test_renamed_entry_points(write):
    from alignguard.spec.model import EntryPoints

    path = write("renamed.py", GOOD_REST.replace("def build_model", "def make"))
    model_file = load_model_file(path, EntryPoints(build_model="make"))
    assert model_file.build_model.__name__ == "make"
