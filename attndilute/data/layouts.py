"""Find the cases of a ``--data`` folder: nnU-Net raw, MSD ``dataset.json``, or a flat folder.

Accepted layouts (first match wins):

1. **MSD** — ``dataset.json`` with a ``training`` list of ``{"image", "label"}`` entries and an
   optional ``test`` list (paths or entries), relative to the folder.
2. **nnU-Net raw** — ``imagesTr/NAME_0000.nii.gz`` with ``labelsTr/NAME.nii.gz``, and
   ``imagesTs/`` with optional ``labelsTs/``. Only channel ``_0000`` is used.
3. **Flat** — ``NAME_image.nii.gz`` with optional ``NAME_label.nii.gz`` side by side.

Names are case identifiers without the ``_0000`` channel suffix, sorted. Discovery only looks at
file names and JSON (and refuses a NIfTI-named entry that is a broken symbolic link, a link loop
or unreadable, rather than skipping it); voxel checks happen in
:func:`attndilute.data.nifti.load_nifti`.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from attndilute.errors import AttnDiluteError

SPLITS = ("train", "test", "all")
_NII = re.compile(r"^(?P<stem>.+?)\.nii(\.gz)?$")
_CHANNEL = re.compile(r"^(?P<name>.+)_(?P<channel>\d{4})$")


@dataclass(frozen=True)
class Case:
    """One scan and its optional tumour label.

    Args:
        name: case identifier (nnU-Net style, without the ``_0000`` channel suffix).
        image: path of the image NIfTI.
        label: path of the binary label NIfTI, or None.
    """

    name: str
    image: Path
    label: Path | None = None


def discover(root: str | Path, *, require_labels: bool = False, split: str = "all") -> list[Case]:
    """List the cases of a data folder.

    Args:
        root: the folder (nnU-Net raw, MSD, or flat layout; see the module docstring).
        require_labels: raise if any case has no label.
        split: ``"train"`` (imagesTr / MSD training), ``"test"`` (imagesTs / MSD test) or
            ``"all"``. A flat folder has no split: every split returns all its cases.

    Returns:
        Cases sorted by name.

    Raises:
        AttnDiluteError: missing or empty folder, unknown split, duplicate names, a label file
            without an image, a listed file that does not exist, missing labels when required,
            or a ``.nii``/``.nii.gz`` entry (or ``dataset.json``) that is a broken symbolic
            link, a link loop or unreadable.
    """
    root = Path(root).expanduser()
    if split not in SPLITS:
        raise AttnDiluteError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if not root.exists():
        raise AttnDiluteError("data folder does not exist", path=root)
    if not root.is_dir():
        raise AttnDiluteError("--data must be a folder", path=root)
    msd = _read_msd(root)
    if msd is not None:
        pairs = _msd_pairs(root, msd, split)
    elif (root / "imagesTr").is_dir() or (root / "imagesTs").is_dir():
        pairs = _nnunet_pairs(root, split)
    else:
        pairs = _flat_pairs(root)
    if not pairs:
        where = "" if split == "all" else f" in split {split!r}"
        raise AttnDiluteError(
            f"no images found{where}",
            path=root,
            hint="expected imagesTr/NAME_0000.nii.gz, an MSD dataset.json, or NAME_image.nii.gz files",
        )
    cases = _unique(pairs, root)
    if require_labels:
        missing = [c.name for c in cases if c.label is None]
        if missing:
            shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
            raise AttnDiluteError(
                f"{len(missing)} of {len(cases)} images have no label ({shown})",
                path=root,
                hint="this command needs a tumour label for every image",
            )
    return cases


def _case_name(path: Path) -> str:
    match = _NII.match(path.name)
    stem = match["stem"] if match else path.name
    channel = _CHANNEL.match(stem)
    return channel["name"] if channel else stem


def _unique(pairs: list[tuple[str, Path, Path | None]], root: Path) -> list[Case]:
    seen: dict[str, Path] = {}
    for name, image, _ in pairs:
        if name in seen:
            raise AttnDiluteError(
                f"duplicate case name {name!r} ({_rel(seen[name], root)} and {_rel(image, root)})",
                path=root,
                hint="case names must be unique across imagesTr and imagesTs",
            )
        seen[name] = image
    return sorted((Case(n, i, lab) for n, i, lab in pairs), key=lambda c: c.name)


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _nii_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        if folder.is_symlink():  # a link to nothing, or a loop
            _check_entry(folder)
        return []
    try:
        entries = sorted(folder.iterdir())
    except OSError as err:
        raise AttnDiluteError(
            f"cannot list the folder ({err.strerror or type(err).__name__})",
            path=folder,
            hint="check its permissions",
        ) from None
    return [p for p in entries if _NII.match(p.name) and _check_entry(p)]


def _check_entry(path: Path) -> bool:
    """True for a readable file (links followed), False for a folder or other non-file.

    Raises AttnDiluteError for a broken symbolic link, a link loop, or a file that cannot be
    read, instead of skipping it: a case that silently drops out changes every cohort figure.
    """
    try:
        st = path.stat()  # follows links
    except OSError as err:
        if err.errno == errno.ELOOP:
            problem = "symbolic link loop (the link points back to itself)"
        elif path.is_symlink():
            problem = "broken symbolic link (its target does not exist)"
        else:
            problem = f"cannot be read ({err.strerror or type(err).__name__})"
        raise AttnDiluteError(problem, path=path, hint="remove it or point it at the real file") from None
    if not stat.S_ISREG(st.st_mode):
        return False
    if not os.access(path, os.R_OK):
        raise AttnDiluteError(
            "file cannot be read (permission denied)", path=path, hint="check its permissions"
        )
    return True


# --- nnU-Net raw -------------------------------------------------------------------------------


def _nnunet_pairs(root: Path, split: str) -> list[tuple[str, Path, Path | None]]:
    parts = {"train": [("imagesTr", "labelsTr")], "test": [("imagesTs", "labelsTs")]}
    parts["all"] = parts["train"] + parts["test"]
    pairs = []
    for images_dir, labels_dir in parts[split]:
        labels = {_case_name(p): p for p in _nii_files(root / labels_dir)}
        for image in _nii_files(root / images_dir):
            stem = _NII.match(image.name)["stem"]
            channel = _CHANNEL.match(stem)
            if channel is None:
                raise AttnDiluteError(
                    "image name lacks the nnU-Net channel suffix",
                    path=image,
                    hint="name images NAME_0000.nii.gz",
                )
            if channel["channel"] != "0000":
                continue  # only the first channel is used
            name = channel["name"]
            pairs.append((name, image, labels.pop(name, None)))
        if labels:
            orphan = sorted(labels.values())[0]
            raise AttnDiluteError(f"{len(labels)} label(s) without an image in {images_dir}/", path=orphan)
    return pairs


# --- MSD dataset.json ----------------------------------------------------------------------------


def _read_msd(root: Path) -> dict | None:
    path = root / "dataset.json"
    if not (path.is_symlink() or path.exists()) or not _check_entry(path):
        return None
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise AttnDiluteError(f"cannot parse dataset.json ({err})", path=path) from None
    if not isinstance(meta, dict) or "training" not in meta:
        return None  # an nnU-Net v2 dataset.json: files are found by folder
    return meta


def _msd_pairs(root: Path, meta: dict, split: str) -> list[tuple[str, Path, Path | None]]:
    keys = {"train": ["training"], "test": ["test"], "all": ["training", "test"]}[split]
    pairs = []
    for key in keys:
        entries = meta.get(key) or []
        if not isinstance(entries, list):
            raise AttnDiluteError(f"dataset.json: {key!r} must be a list", path=root / "dataset.json")
        for entry in entries:
            if isinstance(entry, str):
                image_rel, label_rel = entry, None
            elif isinstance(entry, dict) and isinstance(entry.get("image"), str):
                image_rel, label_rel = entry["image"], entry.get("label")
            else:
                raise AttnDiluteError(
                    f"dataset.json: bad {key!r} entry {entry!r}", path=root / "dataset.json"
                )
            image = _listed(root, image_rel)
            label = _listed(root, label_rel) if label_rel else None
            pairs.append((_case_name(image), image, label))
    return pairs


def _listed(root: Path, rel: str) -> Path:
    path = root / rel
    if not (path.is_symlink() or path.exists()):
        raise AttnDiluteError("file listed in dataset.json does not exist", path=path)
    if not _check_entry(path):
        raise AttnDiluteError("entry listed in dataset.json is not a file", path=path)
    return root / Path(rel)


# --- flat folder -----------------------------------------------------------------------------------


def _flat_pairs(root: Path) -> list[tuple[str, Path, Path | None]]:
    images: dict[str, Path] = {}
    labels: dict[str, Path] = {}
    for path in _nii_files(root):
        stem = _NII.match(path.name)["stem"]
        for suffix, table in (("_image", images), ("_label", labels)):
            if stem.endswith(suffix):
                name = stem[: -len(suffix)]
                if name in table:
                    raise AttnDiluteError(
                        f"duplicate case name {name!r} ({table[name].name} and {path.name})",
                        path=root,
                    )
                table[name] = path
    orphans = sorted(set(labels) - set(images))
    if orphans:
        raise AttnDiluteError(f"label without an image: {labels[orphans[0]].name}", path=root)
    return [(name, image, labels.get(name)) for name, image in images.items()]
