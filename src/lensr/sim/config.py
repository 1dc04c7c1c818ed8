"""The simulation config: one typed, validated model per preset YAML file.

Every angle is in arcsec, every mass in solar masses, magnitudes are AB-like with the
instrument's zero point (counts/s for magnitude ``zero_point``). Ranges are sampled
uniformly per image; a scalar is a fixed value.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from lensr.config import Range, Strict, load
from lensr.errors import LensrError

CLASS_NAMES = ("none", "cdm", "axion")


def _bounds(lo: float, hi: float | None = None, *, closed_lo: bool = False):
    """A check that both ends of a range lie in (lo, hi] (or [lo, hi] with closed_lo)."""

    def check(value: tuple[float, float]) -> tuple[float, float]:
        low_ok = value[0] >= lo if closed_lo else value[0] > lo
        if not low_ok or (hi is not None and value[1] > hi):
            interval = f"{'[' if closed_lo else '('}{lo:g}, {'inf)' if hi is None else f'{hi:g}]'}"
            raise ValueError(f"range [{value[0]:g}, {value[1]:g}] must lie in {interval}")
        return value

    return AfterValidator(check)


PositiveRange = Annotated[Range, _bounds(0.0)]
"""A range of strictly positive values (sizes, S/N, masses, FWHMs)."""
NonNegativeRange = Annotated[Range, _bounds(0.0, closed_lo=True)]
AxisRatio = Annotated[Range, _bounds(0.0, 1.0)]
"""An axis ratio q in (0, 1]."""


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
    r_sersic: PositiveRange = (0.5, 1.5)
    n_sersic: PositiveRange = (3.0, 4.5)
    q: AxisRatio = (0.6, 1.0)


class Lens(Strict):
    """SIE + external shear main deflector."""

    theta_e: PositiveRange = (0.9, 1.5)
    q: AxisRatio = (0.7, 1.0)
    phi: Range = (0.0, math.pi)
    """Position angle of the major axis (lenstronomy's phi, radians from +x)."""
    shear: NonNegativeRange = (0.0, 0.05)
    shear_phi: Range = (0.0, math.pi)
    """Shear angle (lenstronomy's shear_polar2cartesian phi, radians)."""
    center: Range = (0.0, 0.0)
    light: LensLight = LensLight()


class Source(Strict):
    """Elliptical Sersic background source."""

    r_sersic: PositiveRange = (0.1, 0.4)
    n_sersic: PositiveRange = (0.7, 2.5)
    center: Range = (-0.35, 0.35)
    q: AxisRatio = (0.6, 1.0)
    phi: Range = (0.0, math.pi)
    """Position angle of the major axis (radians from +x)."""
    magnitude: Range = (21.0, 23.0)
    components: NonNegativeRange = (1.0, 1.0)
    """Number of Sersic components (integer, drawn uniformly): the extra ones are fainter
    (+0.5..2.5 mag), 0.3-1x the main radius, within ``r_sersic[1]`` of the main centre."""
    clumps: NonNegativeRange = (0.0, 0.0)
    """Number of compact star-forming clumps (integer, drawn uniformly): round Sersic n=1,
    R 0.02-0.08", 1.5-4 mag fainter than the main component, within 1.5 R of its centre."""
    templates: str | None = None
    """Folder of galaxy cutouts (.npy/FITS, background-subtracted) used as source templates
    through lenstronomy's INTERPOL profile; relative paths are relative to the working dir."""
    template_probability: float = Field(0.0, ge=0, le=1)
    """Share of images whose main source is a template instead of a Sersic."""
    template_size: PositiveRange = (0.4, 1.6)
    """Angular width (arcsec) a template cutout spans on the source plane."""


class CDM(Strict):
    """Cold-dark-matter subhalos: Poisson(n_mean) masses with dN/dm ~ m^slope (``count:
    fixed``: exactly n_mean of them, as DeepLenseSim does)."""

    n_mean: float = Field(25.0, ge=0)
    count: Literal["poisson", "fixed"] = "poisson"
    mass: PositiveRange = (1e6, 1e10)
    slope: float = -0.9
    radius: NonNegativeRange = (0.25, 2.0)
    profile: Literal["point_mass", "tnfw"] = "point_mass"

    @model_validator(mode="after")
    def _whole_fixed_count(self):
        if self.count == "fixed" and self.n_mean != int(self.n_mean):
            raise ValueError(f"count fixed needs a whole n_mean, not {self.n_mean}")
        return self


class Axion(Strict):
    """Axion vortex: ``n_points`` equal point masses on a line through the lens centre."""

    total_mass: float = Field(3e10, gt=0)
    n_points: int = Field(100, ge=2)
    log10_mass_ev: Range = (-24.0, -22.0)
    length_coeff: float = Field(0.03, gt=0)


class PSFConfig(Strict):
    """Point-spread function: Gaussian or Moffat with a per-image FWHM in arcsec."""

    type: Literal["gaussian", "moffat"] = "gaussian"
    fwhm: PositiveRange = (0.087, 0.087)
    beta: Annotated[Range, _bounds(1.0)] = (4.765, 4.765)
    """Moffat beta > 1 (the profile's flux diverges at 1)."""

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
    background_rms: float = Field(0.0, ge=0)
    """Gaussian background noise in e-/s per pixel (DeepLenseSim's ``background_rms``): a
    variance (background_rms * t)^2 in electrons, added to the read noise's (``noise.snr``
    sets exposures without it)."""


class Noise(Strict):
    """Per-image noise choices shared by both bands."""

    enabled: bool = True
    """false: hr and lr are the noise-free images (DeepLenseSim's released Models II/III)."""
    log10_exposure: Range | None = None
    """log10 of the HR exposure time in s, drawn per image; sets both exposure times
    (ratio kept). DeepLenseSim Model I: [3, 3.5]."""
    snr: PositiveRange | None = None
    """Peak-pixel S/N of the noise-free HR image; sets both exposure times (ratio kept)."""
    correlated_sigma: NonNegativeRange = (0.0, 0.0)
    """Gaussian correlation length of the noise in pixels (0 = white noise)."""
    cosmic_rays: float = Field(0.0, ge=0)
    """Expected number of cosmic-ray hits per image and band."""
    offset: float = Field(0.0, ge=0, le=1)
    """Maximum sub-pixel shift of the LR sky relative to the HR sky, in HR pixels."""

    @model_validator(mode="after")
    def _one_exposure_rule(self):
        if self.snr is not None and self.log10_exposure is not None:
            raise ValueError("set snr or log10_exposure, not both: each sets the exposure time")
        return self


class Variant(Strict):
    """One part of a mixture prior: keys of the preset overridden (deep merge), and its
    weight. Each image is drawn from one variant (``SimConfig.variants``)."""

    name: str = "variant"
    weight: float = Field(1.0, gt=0)
    overrides: dict = Field(default_factory=dict)


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
    engine: Literal["lenstronomy", "caustics"] = "lenstronomy"
    """Renderer of the sky: lenstronomy (the reference) or caustics (batched PyTorch, for
    GPUs; same noise-free images within 1e-4 relative L2; ``pip install lensr[gpu]``)."""
    cosmology: Cosmology = Cosmology()
    lens: Lens = Lens()
    source: Source = Source()
    cdm: CDM = CDM()
    axion: Axion = Axion()
    hr: Instrument = Instrument()
    lr: Instrument = Instrument(psf=PSFConfig(fwhm=(0.16, 0.16)))
    noise: Noise = Noise()
    mass_compensation: bool = False
    """true: the main lens gives up the substructure mass inside its Einstein radius, so the
    ring of a cdm/axion lens has the radius of the same lens without substructure (on average):
    theta_E' = theta_E - theta_sub^2 / theta_E, theta_sub the Einstein radius of that mass."""
    variants: list[Variant] = Field(default_factory=list)
    """A mixture prior: each image picks one variant (by weight) and is rendered with the
    preset's keys overridden by it (pixel scale, instruments, noise...); hr_size, scale and
    classes must stay the preset's. Empty: the preset itself (see ``variant_configs``)."""

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


def variant_configs(cfg: SimConfig) -> list[tuple[SimConfig, float]]:
    """The (config, weight) of every variant of ``cfg``: ``[(cfg, 1.0)]`` without variants."""
    from lensr.config import deep_update, validate

    if not cfg.variants:
        return [(cfg, 1.0)]
    base = cfg.model_dump(exclude={"variants"})
    out = []
    for v in cfg.variants:
        sub = validate(
            SimConfig,
            deep_update(base, {**v.overrides, "name": f"{cfg.name}/{v.name}"}),
            source=f"preset {cfg.name}, variant {v.name}",
        )
        for key in ("hr_size", "scale", "classes"):
            if getattr(sub, key) != getattr(cfg, key):
                raise LensrError(f"preset {cfg.name}, variant {v.name}: may not change {key}")
        if sub.variants:
            raise LensrError(f"preset {cfg.name}, variant {v.name}: variants do not nest")
        out.append((sub, v.weight))
    return out


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
