"""Layout detection and planning for ``lensr import``: which files go into which dataset.

A source folder is one of two layouts (see :func:`lensr.data.importers.import_dataset`):
``pairs`` (``HR/`` + ``LR/`` paired by file name) or ``classes`` (substructure class
folders, optionally under split folders). :func:`resolve_layout` tells them apart, and
:func:`plan_pairs` / :func:`plan_classes` turn a folder into :class:`ImportJob` s (one
per output file) without reading any pixel.

Example::

    from lensr.data.import_layouts import plan_classes, resolve_layout
    resolve_layout(Path("deeplense/task1"), "auto")          # "classes"
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from lensr.data.image_files import file_stem, image_files, is_ignored, natural_key
from lensr.errors import LensrError

LAYOUTS = ("auto", "pairs", "classes")
CLASS_ORDER = ("none", "cdm", "axion")
CLASS_ALIASES = {
    "no": "none",
    "no_sub": "none",
    "none": "none",
    "no_substructure": "none",
    "sphere": "cdm",
    "cdm": "cdm",
    "subhalo": "cdm",
    "vort": "axion",
    "vortex": "axion",
    "axion": "axion",
}
UNITS = "as imported (e.g. min-max normalised per image)"
LR_SOURCE_BLOCK_MEAN = "block mean of hr (imported classification data has no LR)"
# HDF5 keeps attributes in the object header (64 KiB in all), so long file lists are left out.
MAX_SOURCE_FILES_CHARS = 32_000
_MAX_NAMES_SHOWN = 3


@dataclass(frozen=True)
class ImportSample:
    """One image to import: its HR file, its LR file (or None) and its label."""

    hr: Path
    lr: Path | None  # None: the LR image is the block mean of hr
    label: int


@dataclass
class ImportJob:
    """One output file and everything needed to write it."""

    out: Path
    samples: list[ImportSample]
    class_names: list[str]
    scale: int
    attrs: dict
    hr_shape: tuple[int, int] = (0, 0)
    lr_shape: tuple[int, int] = (0, 0)


# Layout detection --------------------------------------------------------------------


def resolve_layout(source: Path, layout: str) -> str:
    """``layout`` checked, or for ``"auto"`` the layout ``source`` has ("pairs"/"classes")."""
    if layout not in LAYOUTS:
        raise LensrError(f"unknown layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    if layout != "auto":
        return layout
    hr, lr = _child_dir(source, "HR"), _child_dir(source, "LR")
    if hr and lr:
        return "pairs"
    if _looks_like_classes(source):
        return "classes"
    if hr or lr:
        missing = "LR" if hr else "HR"
        raise LensrError(
            f"{source}: has {(hr or lr).name}/ but no {missing}/ folder (layout pairs needs both)"
        )
    raise LensrError(
        f"{source}: unknown layout: expected HR/ + LR/ folders (pairs) or class folders "
        f"({_alias_hint()}), optionally under split folders such as train/ and val/ (classes)"
    )


def _alias_hint() -> str:
    groups = {c: [a for a, t in CLASS_ALIASES.items() if t == c] for c in CLASS_ORDER}
    return "; ".join(f"{'/'.join(names)} -> {c}" for c, names in groups.items())


def _subdirs(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_dir() and not is_ignored(p)),
        key=lambda p: natural_key(p.name),
    )


def _child_dir(folder: Path, name: str) -> Path | None:
    """The subfolder called ``name`` in any letter case, or None."""
    for sub in _subdirs(folder):
        if sub.name.lower() == name.lower():
            return sub
    return None


def _class_of(folder: Path) -> str | None:
    return CLASS_ALIASES.get(folder.name.lower())


def _looks_like_classes(source: Path) -> bool:
    for sub in _subdirs(source):
        if _class_of(sub) or any(_class_of(inner) for inner in _subdirs(sub)):
            return True
    return False


def _names(paths: list[str]) -> str:
    shown = ", ".join(paths[:_MAX_NAMES_SHOWN])
    return shown + (", ..." if len(paths) > _MAX_NAMES_SHOWN else "")


def _attrs(source: Path, layout: str, rel_files: list) -> dict:
    attrs = {
        "producer": "lensr import",
        "source": str(source.resolve()),
        "layout": layout,
        "units": UNITS,
    }
    listing = json.dumps(rel_files)
    if len(listing) <= MAX_SOURCE_FILES_CHARS:
        attrs["source_files"] = listing
    return attrs


# Layout: pairs ---------------------------------------------------------------------------


def plan_pairs(source: Path, out: Path, *, scale: int | None) -> ImportJob:
    """The job for ``SOURCE/HR`` + ``SOURCE/LR``; ``scale`` None (0 in the job): inferred."""
    hr_dir, lr_dir = _child_dir(source, "HR"), _child_dir(source, "LR")
    for name, folder in (("HR", hr_dir), ("LR", lr_dir)):
        if folder is None:
            raise LensrError(
                f"{source}: no {name}/ folder (layout pairs expects {source}/HR and {source}/LR)"
            )
    hr_files, lr_files = image_files(hr_dir), image_files(lr_dir)
    pairs = _match_pairs(hr_files, lr_files, hr_dir=hr_dir, lr_dir=lr_dir)
    samples = [ImportSample(hr=h, lr=lr, label=0) for h, lr in pairs]
    rel = [[h.relative_to(source).as_posix(), lr.relative_to(source).as_posix()] for h, lr in pairs]
    return ImportJob(
        out=out,
        samples=samples,
        class_names=["unknown"],
        scale=scale or 0,
        attrs=_attrs(source, "pairs", rel),
    )


def _keyed(files: list[Path], *, prefix: str | None) -> dict[str, Path]:
    """Map pairing key -> file; the key is the name without extension (and ``prefix``)."""
    keyed: dict[str, Path] = {}
    for path in files:
        key = file_stem(path)
        if prefix and key.lower().startswith(prefix.lower()):
            key = key[len(prefix) :]
        if key in keyed:
            raise LensrError(f"{path}: same name as {keyed[key].name}; cannot tell which to pair")
        keyed[key] = path
    return keyed


def _match_pairs(
    hr_files: list[Path], lr_files: list[Path], *, hr_dir: Path, lr_dir: Path
) -> list[tuple[Path, Path]]:
    """Pair by identical names, or by names that differ only by the folder prefix."""
    best = None
    for hr_prefix, lr_prefix in ((None, None), (hr_dir.name, lr_dir.name)):
        hr_keys = _keyed(hr_files, prefix=hr_prefix)
        lr_keys = _keyed(lr_files, prefix=lr_prefix)
        common = hr_keys.keys() & lr_keys.keys()
        if best is None or len(common) > len(best[2]):
            best = (hr_keys, lr_keys, common)
    hr_keys, lr_keys, common = best
    _report_unmatched(hr_keys, lr_keys, common, hr_dir=hr_dir, lr_dir=lr_dir)
    order = sorted(common, key=lambda k: (natural_key(k), k))
    return [(hr_keys[k], lr_keys[k]) for k in order]


def _report_unmatched(hr_keys, lr_keys, common, *, hr_dir: Path, lr_dir: Path) -> None:
    problems = []
    for keys, folder, other in ((hr_keys, hr_dir, lr_dir), (lr_keys, lr_dir, hr_dir)):
        lonely = [keys[k].name for k in sorted(keys.keys() - common, key=natural_key)]
        if lonely:
            problems.append(
                f"{len(lonely)} file(s) in {folder} have no partner in {other} ({_names(lonely)})"
            )
    if problems:
        raise LensrError("; ".join(problems))


# Layout: classes -------------------------------------------------------------------------


def plan_classes(source: Path, out: Path, *, scale: int) -> list[ImportJob]:
    """One job per split (``<out stem>-<split><suffix>``), or one job without splits."""
    splits = _scan_classes(source)
    present = {c for folders in splits.values() for c in folders}
    # One class list for every split, so that label k means the same class in each file.
    class_names = [c for c in CLASS_ORDER if c in present]
    jobs = []
    for split, folders in splits.items():
        samples = [
            ImportSample(hr=path, lr=None, label=class_names.index(c))
            for c in class_names
            if c in folders
            for path in image_files(folders[c])
        ]
        rel = [s.hr.relative_to(source).as_posix() for s in samples]
        attrs = {**_attrs(source, "classes", rel), "lr_source": LR_SOURCE_BLOCK_MEAN}
        if split is not None:
            attrs["split"] = split
        target = out if split is None else out.with_name(f"{out.stem}-{split}{out.suffix}")
        job = ImportJob(target, samples, class_names=class_names, scale=scale, attrs=attrs)
        jobs.append(job)
    return jobs


def _scan_classes(source: Path) -> dict[str | None, dict[str, Path]]:
    """{split or None: {class: folder}}, split folders in natural order."""
    subdirs = _subdirs(source)
    if not subdirs:
        raise LensrError(
            f"{source}: empty folder (layout classes expects class folders: {_alias_hint()})"
        )
    if all(_class_of(d) for d in subdirs):
        return {None: _class_folders(source, subdirs)}
    splits = {}
    for split in subdirs:
        inner = _subdirs(split)
        if not inner or not all(_class_of(d) for d in inner):
            odd = next((d for d in inner if not _class_of(d)), split)
            raise LensrError(
                f"{odd}: neither a class folder ({_alias_hint()}) nor a split "
                "folder holding only class folders"
            )
        splits[split.name] = _class_folders(split, inner)
    return splits


def _class_folders(parent: Path, subdirs: list[Path]) -> dict[str, Path]:
    folders: dict[str, Path] = {}
    for sub in subdirs:
        cls = _class_of(sub)
        if cls in folders:
            raise LensrError(f"{sub}: holds class '{cls}' like {folders[cls]}; keep only one")
        folders[cls] = sub
    return folders
