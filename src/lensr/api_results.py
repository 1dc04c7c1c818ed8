"""The result objects of the Python API: evaluations, classifications and whole studies.

Each holds the dict the matching command writes as JSON (``metrics``: the same numbers,
the same keys) and offers its tables as lists of dataclass rows, their Markdown text
(identical to the CLI's ``table.md``) and a notebook display.

Example::

    from lensr.api_results import StudyResult
    study = StudyResult.load("runs/demo")                    # a finished ``lensr run``
    study.table("sim-test")[0].psnr                          # the report's headline table
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from lensr.errors import LensrError

Interval = tuple[float, float]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise LensrError(f"cannot read {path}: {err}") from None


@dataclass(frozen=True)
class ScoreRow:
    """One model's row of an evaluation table: means and 95 % bootstrap intervals over
    images (PSNR in dB, SSIM in [0, 1], after min-max normalising the HR target), and
    its paired gain over bicubic (None for bicubic itself or without a bicubic model)."""

    model: str
    params: int
    mse: float
    psnr: float
    psnr_ci: Interval
    ssim: float
    ssim_ci: Interval
    images_per_s: float
    gain_psnr: float | None = None
    gain_psnr_ci: Interval | None = None
    gain_ssim: float | None = None
    gain_ssim_ci: Interval | None = None


def _ci(summary: dict) -> Interval:
    return (float(summary["ci_low"]), float(summary["ci_high"]))


@dataclass
class EvalResult:
    """What an evaluation measured: ``metrics`` is ``metrics.json`` of ``lensr evaluate``
    (dataset, n, scale, targets, models with per-class scores, gains_vs_bicubic, trust);
    ``out_dir`` holds its files (None when they were not kept)."""

    metrics: dict
    out_dir: Path | None = None

    @classmethod
    def load(cls, folder: str | Path) -> EvalResult:
        """The result of an evaluation folder (its ``metrics.json``)."""
        folder = Path(folder)
        return cls(metrics=_read_json(folder / "metrics.json"), out_dir=folder)

    @property
    def targets(self) -> list[str]:
        """``"noisy"`` (the noisy HR) and, for simulations, ``"clean"`` (noise-free HR)."""
        return list(self.metrics["targets"])

    @property
    def models(self) -> list[str]:
        return [m["name"] for m in self.metrics["models"]]

    def table(self, target: str | None = None) -> list[ScoreRow]:
        """The rows of the table against ``target`` (default: the noise-free HR when the
        data have it, else the noisy HR), one per model, in the order evaluated."""
        target = target or ("clean" if "clean" in self.targets else self.targets[0])
        if target not in self.targets:
            raise LensrError(f"no target {target!r} in this evaluation (has {self.targets})")
        gains = self.metrics.get("gains_vs_bicubic", {}).get(target, {})
        rows = []
        for m in self.metrics["models"]:
            s, g = m["scores"][target]["overall"], gains.get(m["name"])
            rows.append(
                ScoreRow(
                    model=m["name"],
                    params=int(m["params"]),
                    mse=float(s["mse"]["mean"]),
                    psnr=float(s["psnr"]["mean"]),
                    psnr_ci=_ci(s["psnr"]),
                    ssim=float(s["ssim"]["mean"]),
                    ssim_ci=_ci(s["ssim"]),
                    images_per_s=float(m["images_per_s"]),
                    gain_psnr=None if g is None else float(g["psnr"]["mean"]),
                    gain_psnr_ci=None if g is None else _ci(g["psnr"]),
                    gain_ssim=None if g is None else float(g["ssim"]["mean"]),
                    gain_ssim_ci=None if g is None else _ci(g["ssim"]),
                )
            )
        return rows

    def markdown(self) -> str:
        """The Markdown tables, character for character the ``table.md`` the CLI writes."""
        from lensr.eval.tables import markdown_tables

        return markdown_tables(self.metrics)

    def _repr_markdown_(self) -> str:
        return self.markdown()


@dataclass(frozen=True)
class ClassRow:
    """One variant (``"HR"``, ``"LR (bicubic)"``, ``"SR: <name>"``) of a classification:
    accuracy, macro-averaged and per-class one-vs-rest AUC (None: undefined)."""

    variant: str
    n: int
    accuracy: float
    macro_auc: float | None
    auc: dict[str, float | None]


@dataclass
class ClassifyResult:
    """What a classification measured: ``metrics`` is ``classification.json`` of
    ``lensr classify eval`` (variants with accuracy, AUC, confusion, ROC curves)."""

    metrics: dict
    out_dir: Path | None = None

    @classmethod
    def load(cls, folder: str | Path) -> ClassifyResult:
        """The result of a classification folder (its ``classification.json``)."""
        folder = Path(folder)
        return cls(metrics=_read_json(folder / "classification.json"), out_dir=folder)

    def table(self) -> list[ClassRow]:
        """One row per variant, in the order classified."""
        return [
            ClassRow(
                variant=v,
                n=int(m["n"]),
                accuracy=float(m["accuracy"]),
                macro_auc=m["macro_auc"],
                auc=dict(m["auc"]),
            )
            for v, m in self.metrics["variants"].items()
        ]

    def markdown(self) -> str:
        """The table as Markdown (accuracy, macro AUC and per-class AUC, 3 decimals)."""
        names = self.metrics["class_names"]
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
        lines = [
            "| variant | accuracy | macro AUC | " + " | ".join(f"AUC {c}" for c in names) + " |",
            "|:--|" + "--:|" * (2 + len(names)),
        ]
        for r in self.table():
            cells = [fmt(r.accuracy), fmt(r.macro_auc), *[fmt(r.auc.get(c)) for c in names]]
            lines.append(f"| {r.variant} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def _repr_markdown_(self) -> str:
        return self.markdown()


@dataclass
class StudyResult:
    """A study run folder, read back: every evaluation (``eval/<name>`` and
    ``transfer/<domain>``), the classification (``classify/eval``) and the report."""

    run_dir: Path
    evaluations: dict[str, EvalResult]
    classification: ClassifyResult | None = None
    report: Path | None = None

    @classmethod
    def load(cls, run_dir: str | Path) -> StudyResult:
        """Read the results of a (finished or partial) study run folder."""
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise LensrError(f"run folder {run_dir} does not exist")
        found = sorted((run_dir / "eval").glob("*/metrics.json"))
        evals = {p.parent.name: EvalResult.load(p.parent) for p in found}
        for p in sorted((run_dir / "transfer").glob("*/eval/metrics.json")):
            evals[f"transfer/{p.parent.parent.name}"] = EvalResult.load(p.parent)
        cls_dir = run_dir / "classify" / "eval"
        classification = (
            ClassifyResult.load(cls_dir) if (cls_dir / "classification.json").exists() else None
        )
        report = run_dir / "report.html"
        return cls(run_dir, evals, classification, report if report.exists() else None)

    def table(self, evaluation: str | None = None, target: str | None = None) -> list[ScoreRow]:
        """The rows of one evaluation (default: the first, as in the report's headline)."""
        if not self.evaluations:
            raise LensrError(f"{self.run_dir} holds no evaluation yet")
        name = evaluation or next(iter(self.evaluations))
        if name not in self.evaluations:
            raise LensrError(f"no evaluation {name!r} (has {', '.join(self.evaluations)})")
        return self.evaluations[name].table(target)

    def _repr_markdown_(self) -> str:
        parts = [f"**Study run** `{self.run_dir}`"]
        parts += [f"### {name}\n\n{e.markdown()}" for name, e in self.evaluations.items()]
        if self.classification is not None:
            parts.append(f"### classification\n\n{self.classification.markdown()}")
        return "\n\n".join(parts)
