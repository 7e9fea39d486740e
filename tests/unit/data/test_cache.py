"""``attndilute cache``: lists and clears only what attndilute created in its cache folder."""

from __future__ import annotations


def _fill(root):
    (root / "phantom-small-s0-v2" / "imagesTr").mkdir(parents=True)
    (root / "phantom-small-s0-v2" / "imagesTr" / "a.nii.gz").write_bytes(b"x" * 3000)
    (root / "preprocessed").mkdir()
    (root / "preprocessed" / ("ab" * 16 + ".npz")).write_bytes(b"y" * 2000)
    (root / "preprocessed" / ".cd.npz.tmp-4242").write_bytes(b"z" * 10)
    (root / "preprocessed" / "mine.npz").write_bytes(b"user")  # not a name attndilute writes
    (root / "notes.txt").write_text("user")


def test_entries_and_clear(tmp_path):
    from attndilute.data.cache import cache_entries, clear_cache

    _fill(tmp_path)
    entries = cache_entries(tmp_path)
    assert [(e.path.relative_to(tmp_path).as_posix(), e.kind, e.size) for e in entries] == [
        ("phantom-small-s0-v2", "phantom", 3000),
        ("preprocessed/.cd.npz.tmp-4242", "temporary", 10),
        ("preprocessed/" + "ab" * 16 + ".npz", "preprocessed", 2000),
    ]
    assert clear_cache(tmp_path) == entries
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "notes.txt", "preprocessed", "preprocessed/mine.npz"
    ]
    assert cache_entries(tmp_path / "absent") == []


def test_cli_cache(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNDILUTE_CACHE", str(tmp_path))
    _fill(tmp_path)
    code, out, _ = cli("cache")
    assert code == 0
    assert out.splitlines()[0] == f"cache {tmp_path} holds 0.0 MB (1 phantom, 1 preprocessed, 1 temporary)"
    assert "phantom-small-s0-v2" in out and "mine.npz" not in out
    code, out, _ = cli("cache", "--clear")
    assert code == 0 and out.startswith(f"cache {tmp_path} cleared 0.0 MB (1 phantom")
    assert (tmp_path / "notes.txt").is_file() and not (tmp_path / "phantom-small-s0-v2").exists()
    code, out, _ = cli("cache")
    assert out.strip() == f"cache {tmp_path} holds 0.0 MB (no entries)"
