"""Training configuration: every knob of `lensr train`, validated, with documented defaults."""

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
