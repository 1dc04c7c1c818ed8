"""The HTML report of a study run: one self-contained page (``lensr report RUN_DIR``).

>>> from lensr.report import build_report
>>> build_report("runs/demo")          # -> runs/demo/report.html

Sections are builder functions in :data:`lensr.report.sections.SECTIONS`; see that module to
add one.
"""

from lensr.report.components import section
from lensr.report.html import build_report
from lensr.report.sections import SECTIONS

__all__ = ["SECTIONS", "build_report", "section"]
