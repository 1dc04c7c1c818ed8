"""Building blocks of the report page: formatting, escaping, tables, embedded figures,
and guarded reading of inputs (a malformed file becomes a note, not a crash)."""

from __future__ import annotations

import base64
import html
import json
import math
import re
from collections.abc import Callable, Iterable
from pathlib import Path

SectionBuilder = Callable[[Path], "str | None"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TARGET_LABELS = {"noisy": "noisy HR", "clean": "noise-free HR"}
TARGET_EXPLAINED = {
    "noisy": "against the noisy HR image, as in the literature",
    "clean": "against the noise-free HR image, the truth the physics cares about "
    "(no model can or should reproduce the noise)",
}

# --------------------------------------------------------------------------- formatting


def esc(value: object) -> str:
    """``value`` as text, HTML-escaped (quotes too)."""
    return html.escape(str(value), quote=True)


def as_finite(value: object) -> float | None:
    """``value`` as a finite float, or None when it is missing, NaN or not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def fmt(value: object, *, kind: str = "auto", sign: bool = False) -> str:
    """A number formatted for a table: ``psnr`` 2 decimals, ``ssim`` 4 decimals, ``mse``
    3 significant digits in scientific notation, ``chi2`` 2 decimals, ``int`` with thousands
    separators, ``auto`` 4 significant digits. Missing or non-numeric values give an en
    dash."""
    number = as_finite(value)
    if number is None:
        return "–" if value is None or isinstance(value, int | float) else esc(value)
    plus = "+" if sign else ""
    if kind == "psnr":
        return f"{number:{plus}.2f}"
    if kind == "ssim":
        return f"{number:{plus}.4f}"
    if kind == "mse":
        return f"{number:{plus}.2e}"
    if kind == "chi2":
        return f"{number:{plus}.2f}"
    if kind == "int" or (kind == "auto" and number.is_integer() and abs(number) < 1e15):
        return f"{int(number):{plus},}"
    return f"{number:{plus}.4g}"


def fmt_stat(summary: object, *, kind: str, sign: bool = False, ci: bool = True) -> str:
    """A metric summary ``{"mean", "ci_low", "ci_high", ...}`` as ``mean [low, high]``."""
    if not isinstance(summary, dict):
        return "–"
    text = fmt(summary.get("mean"), kind=kind, sign=sign)
    low, high = summary.get("ci_low"), summary.get("ci_high")
    if ci and as_finite(low) is not None and as_finite(high) is not None:
        low_text, high_text = fmt(low, kind=kind, sign=sign), fmt(high, kind=kind, sign=sign)
        text += f' <span class="ci">[{low_text}, {high_text}]</span>'
    return text


def fmt_params(value: object) -> str:
    """A parameter count as 0, 12.3 k or 1.23 M."""
    number = as_finite(value)
    if number is None:
        return "–"
    if number >= 1e6:
        return f"{number / 1e6:.2f} M"
    if number >= 1e4:
        return f"{number / 1e3:.1f} k"
    return f"{int(number):,}"


def fmt_seconds(value: object) -> str:
    """A duration as 0.42 s, 12.3 s, 4 min 05 s or 2 h 03 min."""
    seconds = as_finite(value)
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.3g} s"
    minutes, sec = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


# --------------------------------------------------------------------------- HTML helpers


def note(text: str) -> str:
    """A visible warning box (a skipped input, a failed section)."""
    return f'<p class="note">⚠ {esc(text)}</p>'


def explain(text: str) -> str:
    """A short plain-language paragraph saying what a section or table shows."""
    return f'<p class="explain">{esc(text)}</p>'


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def section(title: str, body: str, *, anchor: str | None = None) -> str:
    """A top-level section: ``<section id=...><h2>title</h2>body</section>``.

    ``body`` is HTML (already escaped); ``title`` is plain text. The table of contents is
    made from these headings.
    """
    anchor = anchor or _slug(title)
    return f'<section id="{esc(anchor)}">\n<h2>{esc(title)}</h2>\n{body}\n</section>'


def table(
    header: list[str],
    rows: Iterable[list[str]],
    *,
    numeric: Iterable[int] = (),
    caption: str | None = None,
) -> str:
    """An HTML table. ``header`` is plain text (escaped here); ``rows`` hold HTML cells
    (escape text with :func:`esc`); columns in ``numeric`` are right-aligned."""
    numeric = set(numeric)

    def cell(tag: str, i: int, content: str) -> str:
        return (
            f'<{tag} class="num">{content}</{tag}>' if i in numeric else f"<{tag}>{content}</{tag}>"
        )

    head = "".join(cell("th", i, esc(h)) for i, h in enumerate(header))
    body = "\n".join(
        "<tr>" + "".join(cell("td", i, c) for i, c in enumerate(r)) + "</tr>" for r in rows
    )
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f"<table>{cap}\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def key_value_table(items: Iterable[tuple[str, str]]) -> str:
    """A two-column table of (plain-text key, HTML value) pairs."""
    rows = "\n".join(f'<tr><th scope="row">{esc(k)}</th><td>{v}</td></tr>' for k, v in items)
    return f'<table class="kv">\n<tbody>\n{rows}\n</tbody>\n</table>'


def png_data_uri(path: str | Path) -> str:
    """The PNG file ``path`` as a ``data:image/png;base64,...`` URI; ValueError if the file
    is not a PNG."""
    data = Path(path).read_bytes()
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG file")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


CSS_PX_PER_INCH = 96
"""CSS pixels per inch: a figure is shown at its printed size (text in pt stays in pt)."""
MAX_PALETTE_ERROR = 8
"""Largest per-channel change (of 255) the 256-colour re-encoding may make; else the PNG is
embedded as it is."""


def compact_png(data: bytes) -> tuple[bytes, float | None]:
    """``(png, width in CSS px or None)``: the PNG bytes re-encoded as an 8-bit palette PNG
    when that changes no pixel by more than :data:`MAX_PALETTE_ERROR` of 255 per channel
    (figures are colour-mapped images and text: a few hundred colours; 3-4x fewer bytes),
    else the bytes unchanged; the width at 96 CSS px per inch from the PNG's dpi."""
    import io

    import numpy as np
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(data))
        dpi = image.info.get("dpi", (None,))[0]
        width = image.size[0] / float(dpi) * CSS_PX_PER_INCH if dpi and dpi > 1 else None
        rgb = image.convert("RGB")
        palette = rgb.quantize(256, method=Image.Quantize.MAXCOVERAGE, dither=Image.Dither.NONE)
        error = np.abs(
            np.asarray(palette.convert("RGB"), dtype=np.int16) - np.asarray(rgb, dtype=np.int16)
        ).max()
        if error > MAX_PALETTE_ERROR:
            return data, width
        out = io.BytesIO()
        palette.save(out, format="PNG", optimize=True, dpi=(dpi, dpi) if dpi else None)
        smaller = out.getvalue()
    except (OSError, ValueError, Image.DecompressionBombError):
        return data, None
    return (smaller if len(smaller) < len(data) else data), width


def figure(path: str | Path, *, caption: str, run_dir: Path | None = None) -> str:
    """An embedded PNG with a caption, or a note when the file is missing or unreadable.

    The image is shown at its printed size (its dpi, 96 CSS px per inch; never wider than
    the page) and embedded as a compact palette PNG (:func:`compact_png`)."""
    path = Path(path)
    label = _rel(path, run_dir)
    try:
        data = path.read_bytes()
        if not data.startswith(PNG_SIGNATURE):
            raise ValueError("not a PNG file")
    except FileNotFoundError:
        return note(f"{label} is missing")
    except (OSError, ValueError) as err:
        return note(f"{label} could not be read: {err}")
    data, width = compact_png(data)
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    size = f' style="width:{width:.0f}px"' if width else ""
    return (
        f'<figure><img src="{uri}"{size} alt="{esc(caption)}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def _rel(path: Path, run_dir: Path | None) -> str:
    if run_dir is not None:
        try:
            return path.relative_to(run_dir).as_posix()
        except ValueError:
            pass
    return str(path)


def describe_error(err: BaseException) -> str:
    """A one-line reason for a failed read: missing key, bad JSON, file not found, else the
    exception's type and message."""
    if isinstance(err, KeyError):
        return f"missing key {err}"
    if isinstance(err, json.JSONDecodeError):
        return f"bad JSON ({err})"
    if isinstance(err, FileNotFoundError):
        return "file not found"
    return f"{type(err).__name__}: {err}"


def guarded(label: str, render: Callable[[], str]) -> str:
    """``render()``, or a note "``label`` could not be read: why" if it raises.

    Use it around each input file a section reads so that one malformed file (bad JSON,
    missing keys, wrong types) is reported in the page instead of stopping the report.
    """
    try:
        return render()
    except Exception as err:  # noqa: BLE001 - any bad input becomes a visible note
        return note(f"{label} could not be read: {describe_error(err)}")


def read_json(path: Path) -> dict:
    """A JSON object from ``path`` (ValueError if it is valid JSON but not an object)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, found {type(data).__name__}")
    return data


def subdirs(path: Path) -> list[Path]:
    """The folders directly inside ``path``, sorted by name ([] when it is not a folder)."""
    return sorted(p for p in path.iterdir() if p.is_dir()) if path.is_dir() else []


# --------------------------------------------------------------------------- header
