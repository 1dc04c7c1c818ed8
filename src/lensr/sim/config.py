"""The simulation config: one typed, validated model per preset YAML file.

Every angle is in arcsec, every mass in solar masses, magnitudes are AB-like with the
instrument's zero point (counts/s for magnitude ``zero_point``). Ranges are sampled
uniformly per image; a scalar is a fixed value.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from lensr.config import Range, Strict, load
from lensr.errors import LensrError

CLASS_NAMES = ("none", "cdm", "axion")


class Cosmology(Strict):
    """Flat LambdaCDM and the lens/source redshifts (DeepLenseSim's choice)."""

    H0: float = Field(70.0, gt=0)
    Om0: float = Field(0.3, gt=0, lt=1)
    z_lens: float = Field(0.5, gt=0)
    z_source: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _source_behind_lens(self):
        if self.z_source <= self.z_lens:
            raise ValueError(f"z_source ({self.z_source}) must exceed z_lens ({self.z_lens})")
        return self


class LensLight(Strict):
    """Elliptical Sersic light of the deflector galaxy, present with ``probability``."""

    probability: float = Field(0.0, ge=0, le=1)
    magnitude: Range = (19.0, 21.0)
    r_sersic: Range = (0.5, 1.5)
    n_sersic: Range = (3.0, 4.5)
    q: Range = (0.6, 1.0)


class Lens(Strict):
    """SIE + external shear main deflector."""

    theta_e: Range = (0.9, 1.5)
    q: Range = (0.7, 1.0)
    shear: Range = (0.0, 0.05)
    center: Range = (0.0, 0.0)
    light: LensLight = LensLight()


class Source(Strict):
    """Elliptical Sersic background source."""

    r_sersic: Range = (0.1, 0.4)
    n_sersic: Range = (0.7, 2.5)
    center: Range = (-0.35, 0.35)
    q: Range = (0.6, 1.0)
    magnitude: Range = (21.0, 23.0)


class CDM(Strict):
    """Cold-dark-matter subhalos: Poisson(n_mean) masses with dN/dm ~ m^slope."""

    n_mean: float = Field(25.0, ge=0)
    mass: Range = (1e6, 1e10)
    slope: float = -0.9
    radius: Range = (0.25, 2.0)
    profile: Literal["point_mass", "tnfw"] = "point_mass"


class Axion(Strict):
    """Axion vortex: ``n_points`` equal point masses on a line through the lens centre."""

    total_mass: float = Field(3e10, gt=0)
    n_points: int = Field(100, ge=2)
    log10_mass_ev: Range = (-24.0, -22.0)
    length_coeff: float = Field(0.03, gt=0)


class PSFConfig(Strict):
    """Point-spread function: Gaussian or Moffat with a per-image FWHM in arcsec."""

    type: Literal["gaussian", "moffat"] = "gaussian"
    fwhm: Range = (0.087, 0.087)
    beta: Range = (4.765, 4.765)

    @model_validator(mode="after")
    def _positive(self):
        if self.fwhm[0] <= 0:
            raise ValueError("fwhm must be positive")
        return self


class Instrument(Strict):
    """One band: PSF and the terms of the noise model (counts are electrons)."""

    psf: PSFConfig = PSFConfig()
    zero_point: float = 25.9
    exposure_time: float = Field(5400.0, gt=0)
    sky_brightness: float = 22.3
    read_noise: float = Field(4.0, ge=0)
    num_exposures: int = Field(1, ge=1)


class Noise(Strict):
    """Per-image noise choices shared by both bands."""

    snr: Range | None = None
    """Peak-pixel S/N of the noise-free HR image; sets both exposure times (ratio kept)."""
    correlated_sigma: Range = (0.0, 0.0)
    """Gaussian correlation length of the noise in pixels (0 = white noise)."""
    cosmic_rays: float = Field(0.0, ge=0)
    """Expected number of cosmic-ray hits per image and band."""
    offset: float = Field(0.0, ge=0, le=1)
    """Maximum sub-pixel shift of the LR sky relative to the HR sky, in HR pixels."""


class SimConfig(Strict):
    """A simulation preset (see ``configs/*.yaml``)."""

    name: str = "custom"
    hr_size: int = Field(150, ge=8, le=4096)
    hr_pixel_scale: float = Field(0.05, gt=0)
    scale: Literal[2, 3, 4] = 2
    supersampling: int = Field(2, ge=1, le=8)
    adaptive_threshold: float = Field(0.0, ge=0, lt=1)
    """0: ray-trace every HR pixel at ``supersampling``. Above 0: a first pass at one ray per
    pixel picks the pixels to supersample: those brighter than this fraction of the peak,
    those within 1.5 px of a subhalo, and a 2-px margin around both (lenstronomy's adaptive
    mode). 1e-3 keeps the noise-free HR within 5e-5 relative L2 of the full render."""
    flux_zero_point: float = 25.0
    """Pixel value 1 is a surface brightness of this magnitude per arcsec^2."""
    classes: list[Literal["none", "cdm", "axion"]] = Field(
        default_factory=lambda: list(CLASS_NAMES)
    )
    cosmology: Cosmology = Cosmology()
    lens: Lens = Lens()
    source: Source = Source()
    cdm: CDM = CDM()
    axion: Axion = Axion()
    hr: Instrument = Instrument()
    lr: Instrument = Instrument(psf=PSFConfig(fwhm=(0.16, 0.16)))
    noise: Noise = Noise()

    @model_validator(mode="after")
    def _consistent(self):
        if self.hr_size % self.scale:
            raise ValueError(f"hr_size {self.hr_size} is not a multiple of scale {self.scale}")
        if not self.classes or len(set(self.classes)) != len(self.classes):
            raise ValueError("classes must be a non-empty list without repeats")
        return self

    @property
    def lr_size(self) -> int:
        return self.hr_size // self.scale

    @property
    def lr_pixel_scale(self) -> float:
        return self.hr_pixel_scale * self.scale


def preset_names() -> list[str]:
    """Names of the presets shipped with lensr."""
    folder = resources.files("lensr") / "presets"
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


def preset_path(name_or_path: str | Path) -> Path:
    """A preset name (``sim``) or a path to a YAML file, as a path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    candidate = Path(str(resources.files("lensr") / "presets" / f"{name_or_path}.yaml"))
    if not candidate.is_file():
        raise LensrError(
            f"unknown preset '{name_or_path}': use one of {', '.join(preset_names())} "
            "or a path to a YAML file"
        )
    return candidate


def load_sim_config(name_or_path: str | Path) -> SimConfig:
    """Load and validate a simulation preset by name or path."""
    return load(SimConfig, preset_path(name_or_path))
