"""Evaluation: what a super-resolved image is worth, against the truth and the data.

- :mod:`~lensr.eval.metrics`, :mod:`~lensr.eval.stats`: per-image PSNR/SSIM/MSE and
  bootstrap summaries (``score_images``, ``summarize_scores``, ``bootstrap_summary``).
- :mod:`~lensr.eval.evaluate`: ``lensr evaluate`` (scoring loop), with
  :mod:`~lensr.eval.model_runs` (which models), :mod:`~lensr.eval.trust_measures`
  (LR chi-square, calibration, projection), :mod:`~lensr.eval.tables`,
  :mod:`~lensr.eval.evaluate_outputs`, :mod:`~lensr.eval.output_dir` and
  :mod:`~lensr.eval.figures`.
- :mod:`~lensr.eval.consistency`: the LR chi-square of an SR image (via lensr.instrument).
- :mod:`~lensr.eval.classification`, :mod:`~lensr.eval.classify_inputs`,
  :mod:`~lensr.eval.classification_figures`: HR vs LR vs SR classification;
  :mod:`~lensr.eval.audit`: the hallucination audit.

Example::

    from lensr.eval.metrics import score_images, summarize_scores
    summarize_scores(score_images(sr, hr))
"""
