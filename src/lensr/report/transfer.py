"""Report section: from simulation to telescope data (`transfer/<domain>/eval` of a run)."""

from __future__ import annotations

from pathlib import Path

from lensr.report.components import explain, guarded, section, subdirs
from lensr.report.eval_tables import eval_html
from lensr.report.summary import transfer_verdict


def transfer_section(run_dir: Path) -> str | None:
    """Transfer learning: per domain, the metric tables of its evaluation."""
    domains = [d for d in subdirs(run_dir / "transfer") if (d / "eval").is_dir()]
    if not domains:
        return None
    verdict = transfer_verdict(run_dir)
    parts = [f'<div class="headline">{verdict}</div>'] if verdict else []
    parts += [
        explain(
            "Models trained on simulations, applied to a telescope-like domain: as they are "
            "(sim only), trained on the domain's few pairs from scratch (domain only), "
            "fine-tuned in two stages (upsampler, then all layers at a 10x lower learning "
            "rate), and adapted without target HR images by ADDA. Scored on the domain's "
            "held-out test pairs. The study we reproduce found fine-tuning far ahead of ADDA "
            "with 300 observed pairs (SRResNet: 29.99 vs 23.56 dB)."
        )
    ]
    for domain in domains:
        parts.append(f"<h3>{domain.name}</h3>")
        parts.append(
            guarded(
                f"transfer/{domain.name}/eval/metrics.json",
                lambda domain=domain: eval_html(run_dir, domain / "eval"),
            )
        )
    return section("Transfer learning", "\n".join(parts))
