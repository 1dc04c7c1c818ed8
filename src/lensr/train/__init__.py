"""Training: Lightning modules and the drivers that fit and export them.

- :mod:`~lensr.train.config`: typed configs of every trainer (``TrainConfig``, ``Runtime``,
  fine-tune, ADDA, classifier); no torch.
- :mod:`~lensr.train.trainer`: the Lightning ``Trainer`` set-up, run folders, seeding.
- :mod:`~lensr.train.supervised`, :mod:`~lensr.train.sr_module`,
  :mod:`~lensr.train.gan_module`: the SR modules (L1/MSE, SRGAN); :mod:`~lensr.train.fit`
  and :mod:`~lensr.train.lr_sweep`: ``lensr train`` and ``lensr lr-sweep``.
- :mod:`~lensr.train.transfer`, :mod:`~lensr.train.finetune`, :mod:`~lensr.train.adda`,
  :mod:`~lensr.train.adda_module`: transfer to telescope-like domains.
- :mod:`~lensr.train.classifier_data`, :mod:`~lensr.train.classifier_module`,
  :mod:`~lensr.train.classifier`: the substructure classifier.
- :mod:`~lensr.train.physics_data`, :mod:`~lensr.train.physics_module`,
  :mod:`~lensr.train.physics_fit`: the physics-informed model trained on LR images only.
"""
