"""The report's sections in page order: :data:`SECTIONS`, builders ``(run_dir) -> html | None``.

Each builder lives in the module of its topic: :mod:`~lensr.report.summary` (findings
first), :mod:`~lensr.report.datasets`,
:mod:`~lensr.report.training`, :mod:`~lensr.report.results`, :mod:`~lensr.report.trust`,
:mod:`~lensr.report.transfer`, :mod:`~lensr.report.classification` and
:mod:`~lensr.report.run_info`.
"""

from __future__ import annotations

from lensr.report.classification import classification_section
from lensr.report.components import SectionBuilder
from lensr.report.datasets import data_section
from lensr.report.results import results_section
from lensr.report.run_info import environment_section, pipeline_section
from lensr.report.summary import summary_section
from lensr.report.training import lr_section, training_section
from lensr.report.transfer import transfer_section
from lensr.report.trust import trust_section

SECTIONS: list[SectionBuilder] = [
    summary_section,
    data_section,
    lr_section,
    training_section,
    results_section,
    trust_section,
    transfer_section,
    classification_section,
    pipeline_section,
    environment_section,
]
"""The page body, in order. Append a ``(run_dir) -> str | None`` builder to add a section."""
