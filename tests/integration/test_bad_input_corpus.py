"""Every case of the bad-input corpus: exit 2, one line naming the file, no traceback, nothing written.

The inputs are hashed before and after: a refused command changes no input file and creates no
file or folder (no output, no ``.tmp`` sibling, no lock, no marker).
"""

from __future__ import annotations

import hashlib

import pytest
from corpus import CASES


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """A saved tiny model whose bytes the checkpoint cases copy."""
    import torch

    from attndilute import models

    path = tmp_path_factory.mktemp("corpus") / "tiny.safetensors"
    torch.manual_seed(0)
    models.save(models.build("smit-tiny", crop=(64, 64, 64), spacing=(2.0, 2.0, 2.0)), path)
    return {"ckpt_bytes": path.read_bytes()}


def _tree(root) -> dict[str, str]:
    """Every path under ``root`` -> content hash (folders and links get a marker of their own)."""
    found = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            found[rel] = "link"
        elif p.is_dir():
            found[rel] = "dir"
        else:
            found[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return found


def test_the_corpus_is_large():
    assert len(CASES) >= 40


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name, shared, tmp_path, monkeypatch, cli):
    root = tmp_path / "case"
    root.mkdir()
    monkeypatch.setenv("ATTNDILUTE_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(root)
    bad = CASES[name](root, shared)
    before = _tree(root)
    code, out, err = cli(*bad.argv)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err + out
    assert bad.says in err, err
    if bad.names is not None:
        assert bad.names in err, err
    assert _tree(root) == before  # inputs unchanged, nothing created, nothing left behind
