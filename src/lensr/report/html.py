"""`lensr report`: one self-contained HTML page that summarises a study run folder.

The page has inline CSS, images embedded as base64 PNG ``data:`` URIs, no JavaScript and no
external requests: it opens from disk in any browser and can be mailed as one file.

Run folder layout read (every piece optional; see ``docs/design.md``)::

    study.yaml  stages.json  environment.json
    data/<name>.json, data/<name>.png          inspect summary + preview grid per dataset
    lr_sweep/lr_sweep.json, lr_sweep.png       learning-rate sweep
    models/<name>/best.json, logs/version_*/   one training run each
    eval/<name>/metrics.json, *.png            evaluation of models on a dataset

Adding a section
----------------
The page body is :data:`SECTIONS`, an ordered list of *section builders*: functions
``(run_dir: Path) -> str | None`` that return one HTML fragment, or ``None`` when their
inputs are absent (the section is then left out). To add a section (transfer learning,
classification, trust, ...) write one such function, make its fragment with :func:`section`
(so it gets an anchor and a line in the table of contents) and the helpers of
:mod:`lensr.report.components` (:func:`table`, :func:`figure`, :func:`note`, :func:`guarded`),
and append it to :data:`lensr.report.sections.SECTIONS`. Inside a builder, wrap the reading of each
input file in :func:`guarded` so that one malformed file becomes a visible note, not a crash;
a builder that raises anyway is also turned into a note by :func:`build_report`.

>>> from lensr.report import build_report
>>> build_report("runs/demo")          # -> runs/demo/report.html
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from lensr.errors import LensrError
from lensr.io import file_lock
from lensr.report.components import SectionBuilder, describe_error, esc, note
from lensr.report.results import header
from lensr.report.run_info import study_name
from lensr.report.sections import SECTIONS

# --------------------------------------------------------------------------- page

CSS = """
:root { --fg: #1d2330; --muted: #5b6475; --line: #d9dee7; --zebra: #f4f6fa; --accent: #2f5fa7; }
* { box-sizing: border-box; }
body { margin: 0; background: #fff; color: var(--fg);
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 60px; }
h1 { font-size: 1.7em; margin: 0.2em 0; }
h2 { font-size: 1.35em; margin-top: 2em; padding-bottom: 4px;
     border-bottom: 2px solid var(--line); }
h3 { font-size: 1.12em; margin-top: 1.6em; }
h4 { font-size: 1em; margin: 1.4em 0 0.4em; }
a { color: var(--accent); }
code, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
            font-size: 0.9em; }
pre { background: var(--zebra); border: 1px solid var(--line); border-radius: 4px;
      padding: 10px 12px; overflow-x: auto; }
.muted, .ci { color: var(--muted); }
.ci { font-size: 0.88em; }
.explain { color: var(--muted); max-width: 80ch; }
.headline { background: #eef4ff; border-left: 4px solid var(--accent); padding: 6px 14px;
            margin: 14px 0; }
.headline p { margin: 6px 0; }
.note { background: #fff6e0; border-left: 4px solid #d99a00; padding: 6px 12px; }
nav.toc { font-size: 0.95em; }
nav.toc ol { display: flex; flex-wrap: wrap; gap: 4px 22px; list-style: none;
          padding: 0; margin: 6px 0; }
table { border-collapse: collapse; margin: 10px 0 16px; font-size: 0.92em; max-width: 100%; }
caption { caption-side: top; text-align: left; color: var(--muted); padding-bottom: 4px; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left;
         vertical-align: top; }
thead th { border-bottom: 2px solid var(--line); background: #fff; }
tbody tr:nth-child(even) { background: var(--zebra); }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th.num { white-space: normal; }
table.kv th { font-weight: 600; white-space: nowrap; }
details { margin: 6px 0 14px; }
summary { cursor: pointer; color: var(--accent); }
figure { margin: 14px 0 20px; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 0.9em; margin-top: 4px; }
footer { margin-top: 3em; color: var(--muted); font-size: 0.85em; }
"""


def _toc(fragments: list[str]) -> str:
    links = [
        f'<li><a href="#{anchor}">{title}</a></li>'
        for frag in fragments
        for anchor, title in re.findall(r'<section id="([^"]+)">\s*<h2>(.*?)</h2>', frag)
    ]
    return f'<nav class="toc"><ol>{"".join(links)}</ol></nav>' if links else ""


def render_sections(run_dir: Path, sections: Iterable[SectionBuilder]) -> list[str]:
    """The fragments of the builders that have inputs; a builder that raises becomes a
    note in the page."""
    fragments = []
    for builder in sections:
        try:
            fragment = builder(run_dir)
        except Exception as err:  # noqa: BLE001 - one broken section must not hide the rest
            name = getattr(builder, "__name__", repr(builder))
            fragment = note(f"section {name} failed: {describe_error(err)}")
        if fragment:
            fragments.append(fragment)
    return fragments


def render_page(title: str, body: str) -> str:
    """A complete, self-contained HTML document."""
    from lensr._version import __version__

    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        f"{body}\n<footer>Made by lensr {esc(__version__)}. Self-contained: images are "
        "embedded, nothing is fetched.</footer>\n</main>\n</body>\n</html>\n"
    )


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def build_report(
    run_dir: str | Path,
    *,
    out: str | Path | None = None,
    sections: Iterable[SectionBuilder] | None = None,
) -> Path:
    """Write one self-contained HTML report of the study run folder ``run_dir``.

    ``out`` defaults to ``run_dir/report.html`` (written atomically). ``sections`` defaults
    to :data:`SECTIONS`. Malformed inputs become notes in the page; a missing ``run_dir``,
    or one with none of the study outputs, raises :class:`~lensr.errors.LensrError`.
    The training-curves figure is also kept in ``run_dir/report_assets/``.

    >>> build_report("runs/demo")
    PosixPath('runs/demo/report.html')
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise LensrError(f"run folder {run_dir} does not exist (or is not a folder)")
    path = Path(out) if out is not None else run_dir / "report.html"
    with file_lock(path):  # a second report into `path` is refused, for the whole write
        fragments = render_sections(run_dir, SECTIONS if sections is None else sections)
        if not fragments:
            raise LensrError(
                f"{run_dir} holds no study outputs (study.yaml, stages.json, environment.json, "
                "data/, lr_sweep/, models/, eval/): nothing to report"
            )
        body = "\n".join([header(run_dir), _toc(fragments), *fragments])
        _atomic_write_text(path, render_page(f"lensr report: {study_name(run_dir)}", body))
    return path
