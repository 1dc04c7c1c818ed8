"""Evaluation: pixel metrics (``metrics``) and their summaries (``stats``).

Example::

    from lensr.eval.metrics import score_images, summarize_scores
    summarize_scores(score_images(sr, hr))
"""
