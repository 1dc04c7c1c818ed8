"""Training configurations, validated, with documented defaults: the shared runtime, SR
training (`lensr train`), fine-tuning, ADDA and the substructure classifier.

Pydantic only (no torch): the CLI and the study engine validate a YAML with these classes
before anything heavy is imported.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from lensr.config import Strict


class Runtime(Strict):
    """Where and how a run executes; shared by every training config (SR, fine-tuning,
    ADDA, classifier, physics-informed)."""

    seed: int = 0
    """Seed of the split, the crops, the order and the initial weights."""
    accelerator: str = "cpu"
    """Lightning accelerator: cpu, gpu, mps or auto."""
    devices: int | str = 1
    strategy: str = "auto"
    """Lightning strategy, e.g. ddp for several GPUs or nodes."""
    precision: str = "32-true"
    """32-true, bf16-mixed, 16-mixed (Lightning)."""
    num_workers: int = Field(0, ge=0)
    """DataLoader worker processes."""
    threads: int | None = Field(None, ge=1)
    """torch CPU threads (None: torch's default)."""


class GANConfig(Strict):
    """SRGAN: content loss plus adversarial loss (Ledig et al. 2017), no VGG loss
    (ImageNet weights cannot be downloaded here and lenses are single-band)."""

    discriminator: str = "srgan-disc"
    discriminator_kwargs: dict = Field(default_factory=dict)
    content_weight: float = Field(1.0, ge=0)
    adversarial_weight: float = Field(1e-3, ge=0)
    discriminator_lr: float = Field(1e-4, gt=0)
    pretrain_steps: int = Field(0, ge=0)
    """Generator steps with the content loss only before the adversarial game starts."""


class TrainConfig(Runtime):
    """One SR training run (`lensr train`)."""

    model: str = "rcan-tiny"
    model_kwargs: dict = Field(default_factory=dict)
    scale: int | None = None
    """Must match the dataset's HR/LR ratio; None takes it from the data."""
    classes: list[str] | None = None
    """Train (and validate) only on images of these classes, e.g. ["cdm"]; None: all."""
    val_fraction: float = Field(0.1, gt=0, lt=1)
    max_val_images: int = Field(64, ge=1)
    patch: int = Field(48, ge=8)
    """LR patch side in pixels (HR patches are scale x larger)."""
    batch_size: int = Field(16, ge=1)
    loss: Literal["l1", "mse"] = "l1"
    lr: float = Field(2e-4, gt=0)
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = Field(0.0, ge=0)
    schedule: Literal["cosine", "multistep", "constant"] = "cosine"
    milestones: list[float] = Field(default_factory=lambda: [0.5, 0.75])
    """multistep: fractions of the total steps at which the LR is multiplied by gamma."""
    gamma: float = Field(0.5, gt=0, le=1)
    max_epochs: int = Field(10, ge=1)
    max_steps: int = Field(-1, ge=-1)
    """Stop after this many optimizer steps (-1: run max_epochs)."""
    max_time_minutes: float | None = Field(None, gt=0)
    val_check_interval: int | None = Field(None, ge=1)
    """Validate every N training steps instead of once per epoch."""
    ema: float | None = Field(None, gt=0, lt=1)
    """Decay of an exponential moving average of the weights (e.g. 0.999); None disables."""
    grad_clip: float | None = Field(None, gt=0)
    gan: GANConfig | None = None

    @model_validator(mode="after")
    def _milestones(self):
        if any(not 0 < m < 1 for m in self.milestones):
            raise ValueError("milestones are fractions of the run, each between 0 and 1")
        return self


class FinetuneConfig(Runtime):
    """Two-stage fine-tuning (`lensr finetune`); a stage with 0 epochs is skipped."""

    stage1_epochs: int = Field(10, ge=0)
    """Maximum epochs of stage 1 (upsampler only)."""
    stage1_lr: float = Field(1e-4, gt=0)
    stage2_epochs: int = Field(10, ge=0)
    """Maximum epochs of stage 2 (all layers)."""
    stage2_lr_factor: float = Field(0.1, gt=0, le=1)
    """Stage 2 learning rate = stage1_lr x this."""
    patience: int = Field(3, ge=1)
    """Epochs without a better val_psnr before a stage stops."""
    schedule: Literal["constant", "cosine"] = "constant"
    """Learning rate within a stage; constant suits early stopping."""
    batch_size: int = Field(16, ge=1)
    patch: int = Field(32, ge=8)
    """LR patch side in pixels."""
    val_fraction: float = Field(0.1, gt=0, lt=1)
    max_val_images: int = Field(64, ge=1)
    loss: Literal["l1", "mse"] = "l1"

    @model_validator(mode="after")
    def _some_stage(self):
        if self.stage1_epochs == 0 and self.stage2_epochs == 0:
            raise ValueError("stage1_epochs and stage2_epochs are both 0: nothing to train")
        return self


class ADDAConfig(Runtime):
    """ADDA of an SR model's encoder (`lensr adda`)."""

    steps: int = Field(2000, ge=1)
    """Target-encoder updates (each preceded by one discriminator update)."""
    lr: float = Field(5e-5, gt=0)
    """Target encoder learning rate (small: it starts from a trained encoder)."""
    disc_lr: float = Field(1e-4, gt=0)
    betas: tuple[float, float] = (0.5, 0.999)
    disc_channels: int = Field(64, ge=4)
    """Width of the feature discriminator's first conv (doubled in its last)."""
    batch_size: int = Field(16, ge=1)
    """Source and target images per step (each)."""
    patch: int = Field(32, ge=8)
    """LR patch side in pixels."""
    adversarial_weight: float = Field(1.0, ge=0)
    identity_weight: float = Field(1.0, ge=0)
    """Weight of the relative L1 between target and source features on target images
    (the content-preserving regulariser, a departure from ADDA; 0 disables it)."""
    monitor: bool = True
    """Score the target validation split (reads its HR, for monitoring only)."""
    val_every: int | None = Field(200, ge=1)
    """Validate every N steps (and after the last); None: only after the last."""
    select_by_val: bool = False
    """Keep the weights with the best target val_psnr instead of the last (peeks at labels)."""
    val_fraction: float = Field(0.1, gt=0, lt=1)
    max_val_images: int = Field(64, ge=1)

    @model_validator(mode="after")
    def _no_grad_scaler(self):
        # The discriminator steps through its raw optimizer, which a fp16 grad scaler skips.
        if self.precision.startswith("16"):
            raise ValueError("ADDA supports precision 32-true or bf16-mixed, not fp16")
        return self


class ClassifierConfig(Runtime):
    """One classifier training run (`lensr classify train`), with its defaults."""

    model: str = "resnet18"
    model_kwargs: dict = Field(default_factory=dict)
    """Passed to the model factory, e.g. ``{"small_input": False}`` for a cheap stem;
    ``num_classes`` is taken from the dataset."""
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    batch_size: int = Field(64, ge=1)
    max_epochs: int = Field(20, ge=1)
    max_steps: int = Field(-1, ge=-1)
    """Stop after this many optimizer steps (-1: run max_epochs)."""
    val_fraction: float = Field(0.1, gt=0, lt=1)
    """Share of every class held out for validation."""
    bn_recalibration_images: int = Field(256, ge=0)
    """Before each validation, recompute the BatchNorm statistics as exact averages over
    this many training images (0: keep the running averages). In short runs the running
    averages lag the fast-moving weights and an eval-mode network can be at chance while
    it fits its training batches perfectly."""
