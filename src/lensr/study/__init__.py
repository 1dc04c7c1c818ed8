"""The whole study as cached stages (``lensr run CONFIG``).

A study YAML (see ``configs/demo.yaml``) names datasets to simulate, an optional
learning-rate sweep, models to train, evaluations, transfer learning, classification and
the report. Every stage records a fingerprint of its config and of the stages it reads; a
rerun skips a stage whose fingerprint is unchanged and whose outputs exist, and reruns what
changed (and everything downstream of it). ``--force STAGE`` reruns one stage (and so its
dependants).

Run folder: ``study.yaml``, ``stages.json``, ``environment.json``, ``data/``, ``lr_sweep/``,
``models/<name>/``, ``eval/<name>/``, ``transfer/<domain>/{<model>-<variant>,eval}/``,
``classify/{classifier,sr-all,sr-cdm,eval,audit}/``, ``report.html``.

Files: ``schema`` (the study config and the training configs it implies), ``engine``
(stages, fingerprints, the cache in ``stages.json``), ``planners`` (what stages a study
yields; ``transfer`` and ``classify`` hold the two larger planners), ``run``
(:func:`run_study`). A later stage plugs in by adding a planner to ``PLANNERS``: a function
``(study, run_dir) -> list[Stage]``.
"""

from lensr.study.engine import Stage
from lensr.study.planners import PLANNERS, plan_study
from lensr.study.run import run_study
from lensr.study.schema import StudyConfig, study_path

__all__ = ["PLANNERS", "Stage", "StudyConfig", "plan_study", "run_study", "study_path"]
