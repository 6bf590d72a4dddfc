"""Training pairs from a dataset, and augmentation that respects the physics.

Each pair is the normalised NC volume and the AC volume on the same NC-derived scale
(:mod:`spectac.nn.normalisation`), whole (64^3 at 6.8 mm for the simulated cohort): attenuation
depends on the whole body, so no cropping to the heart. A network with a prior also gets the
prior's channels, made from the NC volume as inference makes them
(:mod:`spectac.correction.prior`).

Augmentation follows the seed -> parameters -> deterministic operation pattern
(:meth:`Augmentation.draw`, :func:`augment`) and imitates what another clinic sends: the heart
elsewhere in the field (a zero-filled shift of NC, prior and AC together), a camera whose field
cuts the body (lateral truncation of NC, prior and AC), another count level (a factor on NC and AC,
with noise added to NC when the counts fall) and other reconstruction settings (mild Gaussian
smoothing). Measured before it: a body cropped to 85% of its width raised unet-gan3d's MAE
almost fourfold. There are no flips or rotations: they would put the heart on the wrong side of
the body or turn the body against the camera orbit, which changes the attenuation the network has
to learn. Factors apply to NC and AC only: a prior's log correction factor does not depend on the
dose.

A mu-map model (target "mu", :data:`spectac.nn.registry.TARGETS`) learns the study's mu-map in
1/cm instead of its AC image. Its target moves with the input (the same shift) but is a property
of the body, not of the camera or the reconstruction: it is not scaled with the counts, not
smoothed and not truncated (a CT sees the body the camera's field cuts; the network has to infer
the cut part, as inference asks it to).

A mu model that takes the scatter-window image (:func:`spectac.nn.registry.takes_scatter`; Shi et
al., Eur J Nucl Med Mol Imaging 2020) gets it as input channel 1, normalised by its own percentile
like NC (:mod:`spectac.reconstruction.scatter_image`: the study's cached ``scatter.nii.gz``, made
from its projections.npz when missing). It is an image of the same acquisition, so augmentation
treats it as NC: the same shift and truncation window (the camera's field cuts every energy
window alike), the same count factor (a lower dose lowers every window's counts) with its own
independent noise, and the same smoothing (the camera's resolution and the patient's motion blur
every window).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from spectac.acquisition.protocol import Protocol
from spectac.correction.prior import prior_channels
from spectac.io.dataset import Dataset
from spectac.nn.normalisation import normalise
from spectac.progress import track
from spectac.quant.geometry import LVGeometry, wall_mask
from spectac.reconstruction.scatter_image import study_scatter_image
from spectac.reconstruction.study import true_mu
from spectac.volume import SpectacError, Volume


@dataclass(frozen=True)
class Pair:
    """One training study: normalised NC and the target, (X, Y, Z) float32, the NC scale, and the
    prior channels (P, X, Y, Z) (P = 0 without a prior); the prior's name, the NC grid (holding the
    normalised NC) and the protocol let augmentation remake the prior from an altered NC.

    ``ac`` holds the target: the AC volume on the NC scale (``target`` "ac"), or the mu-map in 1/cm
    (``target`` "mu"). ``scatter``: the normalised scatter-window image (X, Y, Z) of a model that
    takes it, else None; ``scatter_noise``: the noise range of :class:`Augmentation` relative to
    NC's for that channel (NC's scale over the scatter image's: at the same counts per voxel, the
    image with the smaller scale has the larger relative noise). ``wall``: (X, Y, Z) float32 1 on
    the LV wall of the study's truth (:func:`spectac.quant.geometry.wall_mask`), for the loss's
    wall term (:class:`spectac.training.steps.L1Loss`), else None."""

    case_id: str
    nc: np.ndarray
    ac: np.ndarray
    scale: float
    prior: np.ndarray | None = None
    prior_name: str = "none"
    grid: Volume | None = None
    protocol: Protocol | None = None
    target: str = "ac"
    scatter: np.ndarray | None = None
    scatter_noise: float = 1.0
    wall: np.ndarray | None = None

    @property
    def images(self) -> int:
        """How many input channels are images of the acquisition (NC, and the scatter image): the
        prior's channels follow them."""
        return 1 if self.scatter is None else 2

    def inputs(self) -> np.ndarray:
        """(C, X, Y, Z) the network input: NC, the scatter image when there is one, then the prior
        channels."""
        channels = [self.nc[None]] + ([self.scatter[None]] if self.scatter is not None else [])
        if self.prior is not None and len(self.prior):
            channels.append(self.prior)
        return channels[0] if len(channels) == 1 else np.concatenate(channels)

    def targets(self) -> np.ndarray:
        """The target (X, Y, Z), or (2, X, Y, Z) with the LV wall mask as channel 1."""
        return with_wall(self.ac, self.wall)


def with_wall(ac: np.ndarray, wall: np.ndarray | None) -> np.ndarray:
    """``ac`` (X, Y, Z) alone, or stacked with the wall mask ``wall``: (2, X, Y, Z)."""
    return ac if wall is None else np.stack([ac, wall.astype(ac.dtype, copy=False)])


def target_channels(target: np.ndarray) -> np.ndarray:
    """A target as (C, X, Y, Z): (1, X, Y, Z) for an image alone, as it is with the wall mask."""
    return target[None] if target.ndim == 3 else target


def load_pairs(dataset: Dataset, split: str, percentile: float, prior: str = "none",
               protocol: Protocol | None = None, target: str = "ac", scatter: bool = False,
               clean: bool = False, wall: bool = False) -> list[Pair]:
    """Load and normalise the NC/AC (or NC/mu, ``target`` "mu") pairs of one split (empty list if
    the split is empty), with the channels of ``prior`` made from each NC volume under the
    dataset's ``protocol``, with ``scatter`` the scatter-window image, and with ``clean`` the CT-AC
    of the expected counts as the AC target (:func:`load_pair`).

    Raises:
        SpectacError: a study's NC and AC are not on one grid, or volumes differ in shape.
    """
    cases = dataset.split(split)
    pairs = [load_pair(dataset, case.case_id, percentile, prior, protocol, target, scatter, clean, wall)
             for case in track(cases, f"load {split}", total=len(cases))]
    shapes = {p.nc.shape for p in pairs}
    if len(shapes) > 1:
        raise SpectacError(f"{dataset.root}: studies of the {split} split differ in shape ({sorted(shapes)})")
    return pairs


def load_pair(dataset: Dataset, case_id: str, percentile: float, prior: str = "none",
              protocol: Protocol | None = None, target: str = "ac", scatter: bool = False,
              clean: bool = False, wall: bool = False) -> Pair:
    """Load and normalise one study's NC/AC pair, with its prior channels (see :func:`load_pairs`);
    with ``target`` "mu" the target is the study's mu-map in 1/cm (mu.nii.gz) moved back by the
    CT-SPECT misregistration the simulator recorded (lv.json ``phantom.mu_shift_mm``; none for
    imported pairs), so the network learns the attenuating body of the emission data. With
    ``scatter``, the study's scatter-window image
    (:func:`spectac.reconstruction.scatter_image.study_scatter_image`, cached in its folder).
    With ``clean`` (an AC target) the target is the CT-AC of the study's expected counts
    (:data:`CLEAN_TARGET`, written by ``spectac simulate --expected-ac``). With ``wall`` (an AC
    target), the mask of the LV wall of the study's truth (lv.json) on the NC grid
    (:func:`spectac.quant.geometry.wall_mask`).

    Raises:
        SpectacError: the study has no mu-map (target "mu") or no expected-count CT-AC
            (``clean``), or its NC and target are not on one grid, or (``scatter``) no
            scatter-window image can be had, or (``wall``) no LV truth (lv.json) or an LV wall
            outside the field.
    """
    nc = dataset.load(case_id, "nc")
    if target == "mu" and not dataset.has(case_id, "mu"):
        raise SpectacError(f"{dataset.study_dir(case_id)}: no mu.nii.gz; a mu model needs every study's mu-map")
    check_clean_target(dataset, case_id, target, clean)
    # a mu target is the body that attenuated the projections, not the misregistered CT's map
    goal = (true_mu(dataset, case_id) if target == "mu"
            else dataset.load(case_id, CLEAN_TARGET if clean else target))
    if not nc.same_grid(goal):
        raise SpectacError(f"{dataset.study_dir(case_id)}: nc and {target} are not on the same grid")
    nc_n, scale = normalise(nc.array, percentile)
    wanted = np.clip(goal.array, 0, None) / (scale if target == "ac" else 1.0)
    scatter_n, noise = None, 1.0
    if scatter:
        image = study_scatter_image(dataset, case_id)
        if not nc.same_grid(image):
            raise SpectacError(f"{dataset.study_dir(case_id)}: nc and scatter are not on the same grid")
        scatter_n, scatter_scale = normalise(image.array, percentile)
        noise = scale / scatter_scale
    return Pair(case_id, nc_n, wanted.astype(np.float32), scale, prior_channels(nc, prior, protocol), prior,
                nc.with_array(nc_n), protocol, target, scatter_n, noise, study_wall(dataset, case_id, nc) if wall else None)


def study_wall(dataset: Dataset, case_id: str, grid: Volume) -> np.ndarray:
    """(X, Y, Z) float32 1 on the LV wall of a study's truth (lv.json) on ``grid``.

    Raises:
        SpectacError: the study has no lv.json (not simulated), or its LV wall lies outside ``grid``.
    """
    lv = dataset.lv(case_id)
    if lv is None:
        raise SpectacError(f"{dataset.study_dir(case_id)}: no lv.json; the loss's wall term (wall_weight) needs "
                           "every training study's LV truth, which only simulated studies have")
    mask = wall_mask(grid, LVGeometry.from_lv_json(lv))
    if not mask.any():
        raise SpectacError(f"{dataset.study_dir(case_id)}: the LV wall of lv.json lies outside the image")
    return mask.astype(np.float32)


#: The study volume of a clean AC target: the CT-AC of the expected counts.
CLEAN_TARGET = "ac_expected"


def check_clean_target(dataset: Dataset, case_id: str, target: str, clean: bool) -> None:
    """Refuse ``clean`` for a mu-map target or a study without :data:`CLEAN_TARGET` (one line).

    Raises:
        SpectacError: as above.
    """
    if not clean:
        return
    if target != "ac":
        raise SpectacError(f"--clean-target is for a model that predicts the AC image, not the {target} map")
    if not dataset.has(case_id, CLEAN_TARGET):
        raise SpectacError(f"{dataset.study_dir(case_id)}: no {CLEAN_TARGET}.nii.gz; --clean-target needs a "
                           "dataset simulated with `spectac simulate --expected-ac`")


def check_extra_train(dataset: Dataset, extras: Sequence[Dataset], target: str, clean: bool) -> None:
    """Refuse extra training datasets (``spectac train --extra-train``) no run can use, in one line:
    one given twice or equal to ``dataset``, one with no train split, one whose volumes are not on
    ``dataset``'s grid, a simulated cohort of ``dataset``'s seed (the same patients: its train split
    would hold ``dataset``'s validation and test patients), or (``clean``) a study without the
    expected-count CT-AC.

    Raises:
        SpectacError: as above.
    """
    train = dataset.split("train")
    first = dataset.load(train[0].case_id, "nc") if train else None
    seen = {dataset.root.resolve()}
    for extra in extras:
        where = f"--extra-train {extra.root}"
        if extra.root.resolve() in seen:
            raise SpectacError(f"{where}: given twice, or the --data dataset itself; give each dataset once")
        seen.add(extra.root.resolve())
        cases = extra.split("train")
        if not cases:
            raise SpectacError(f"{where}: no study in its train split (only train studies are trained on; "
                               "simulate it with --split 100/0/0 to train on all of it)")
        if (extra.meta.get("source") == dataset.meta.get("source") == "simulation"
                and extra.meta.get("seed") == dataset.meta.get("seed")):
            raise SpectacError(f"{where}: simulated with --data's seed ({extra.meta.get('seed')}), so it holds "
                               "the same patients, whose validation and test studies must stay unseen; "
                               "simulate it with another --seed")
        nc = extra.load(cases[0].case_id, "nc")
        if first is not None and (nc.shape != first.shape or not np.allclose(nc.spacing, first.spacing, atol=1e-3)):
            raise SpectacError(f"{where}: volumes {list(nc.shape)} at {[round(float(x), 2) for x in nc.spacing]} mm, "
                               f"--data's {list(first.shape)} at {[round(float(x), 2) for x in first.spacing]} mm; "
                               "one network trains on one grid")
        for case in cases:
            check_clean_target(extra, case.case_id, target, clean)


@dataclass(frozen=True)
class Augmentation:
    """Ranges of the random augmentation; 0 disables a part.

    The parts imitate what another clinic sends (:data:`PRESETS` "clinic", the default of
    ``spectac train``); "basic" is the augmentation of earlier versions (``intensity`` 0.1,
    ``shift_voxels`` 3, nothing else) and reproduces their draws exactly.

    Attributes:
        intensity: NC and AC multiplied by a factor drawn uniformly from [1 - intensity, 1 + intensity].
        shift_voxels: heart position: one integer shift per axis drawn from [-shift_voxels,
            shift_voxels], the same for every channel and the target (zero-filled).
        counts: count level: NC and AC multiplied by a factor c drawn log-uniformly from
            [1 / counts, counts] (2: half to twice the study's counts); 0 or 1 disables.
        noise: the squared relative noise of a study at the normalisation scale (NC / scale = 1)
            at its own count level; a draw c < 1 adds to the NC input only zero-mean Gaussian noise of
            variance ``noise * c * (1 - c) * x`` (x the normalised NC), so that after the factor c
            the relative variance is that of a study with c times the counts (Poisson-like:
            variance proportional to the value, relative variance proportional to 1 / counts).
            The default 0.0025 is 5% relative noise at the myocardial maximum.
        smooth_sigma: reconstruction settings (another post-filter or number of iterations):
            Gaussian smoothing with a sigma drawn uniformly from [0, smooth_sigma] voxels, applied
            to the NC input and, with ``smooth_target``, to the AC target as well (a clinic's
            CT-AC comes from the same reconstruction settings as its NC).
        smooth_target: smooth the target with the input (see ``smooth_sigma``).
        truncation: probability that a pair is truncated laterally as by a camera with a small
            field of view: NC, AC and the prior are zeroed outside a window of the array's
            transaxial x axis (axis 0) that cuts a fraction drawn from [0, truncation_max] of the
            body width off one side, the other side, or each side independently; a prior is
            remade from the truncated NC, as inference would make it.
        truncation_max: the largest fraction of the body width cut off one side.
        body_fraction: the body is where NC exceeds this fraction of its maximum.
    """

    intensity: float = 0.0
    shift_voxels: int = 4
    counts: float = 2.0
    noise: float = 0.0025
    smooth_sigma: float = 1.0
    smooth_target: bool = True
    truncation: float = 0.3
    truncation_max: float = 0.2
    body_fraction: float = 0.05

    def check(self) -> None:
        """Refuse ranges no draw can use (one line each).

        Raises:
            SpectacError: a negative or non-finite range, a count range in (0, 1), a probability or
                fraction outside [0, 1], or an intensity of 1 or more (a factor of 0 or less).
        """
        for name in ("intensity", "counts", "noise", "smooth_sigma", "truncation", "truncation_max", "body_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise SpectacError(f"augmentation {name} must be a finite number of at least 0 (0 disables), got {value!r}")
        if not isinstance(self.shift_voxels, (int, np.integer)) or isinstance(self.shift_voxels, bool) or self.shift_voxels < 0:
            raise SpectacError(f"augmentation shift_voxels must be a whole number of at least 0, got {self.shift_voxels!r}")
        if self.intensity >= 1:
            raise SpectacError(f"augmentation intensity must be below 1 (a factor above 0), got {self.intensity!r}")
        if 0 < self.counts < 1:
            raise SpectacError(f"augmentation counts is the largest count ratio, 1 or more (0 disables), got {self.counts!r}")
        for name in ("truncation", "truncation_max", "body_fraction"):
            if getattr(self, name) > 1:
                raise SpectacError(f"augmentation {name} must lie in [0, 1], got {getattr(self, name)!r}")
        if not isinstance(self.smooth_target, bool):
            raise SpectacError(f"augmentation smooth_target must be true or false, got {self.smooth_target!r}")

    def draw(self, rng: np.random.Generator) -> Draw:
        """Draw the parameters of one pair. The intensity and the shift are drawn first and
        exactly as earlier versions drew them; a disabled part draws nothing."""
        factor = float(rng.uniform(1 - self.intensity, 1 + self.intensity)) if self.intensity > 0 else 1.0
        shift = tuple(int(s) for s in rng.integers(-self.shift_voxels, self.shift_voxels + 1, size=3))
        counts = float(np.exp(rng.uniform(-np.log(self.counts), np.log(self.counts)))) if self.counts > 1 else 1.0
        sigma = float(rng.uniform(0, self.smooth_sigma)) if self.smooth_sigma > 0 else 0.0
        cuts = (0.0, 0.0)
        if self.truncation > 0 and self.truncation_max > 0 and rng.uniform() < self.truncation:
            side = int(rng.integers(3))  # 0: low x only, 1: high x only, 2: both
            low, high = rng.uniform(0, self.truncation_max, size=2)
            cuts = (float(low) if side != 1 else 0.0, float(high) if side != 0 else 0.0)
        seed = int(rng.integers(2**63)) if self.noise > 0 and counts < 1 else 0
        return Draw(factor, shift, counts, sigma, cuts, seed)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Draw:
    """The parameters of one augmented pair (see :class:`Augmentation`): intensity factor, shift,
    count factor, smoothing sigma in voxels, fractions of the body width cut off the low and the
    high x side, and the seed of the added noise."""

    factor: float = 1.0
    shift: tuple[int, int, int] = (0, 0, 0)
    counts: float = 1.0
    sigma: float = 0.0
    cuts: tuple[float, float] = (0.0, 0.0)
    noise_seed: int = 0


#: Named augmentations of ``spectac train --augment``.
PRESETS = {
    "clinic": Augmentation(),
    "basic": Augmentation(intensity=0.1, shift_voxels=3, counts=0.0, noise=0.0, smooth_sigma=0.0, truncation=0.0),
    "none": Augmentation(intensity=0.0, shift_voxels=0, counts=0.0, noise=0.0, smooth_sigma=0.0, truncation=0.0),
}


def shift_zero_fill(volume: np.ndarray, shift: Sequence[int]) -> np.ndarray:
    """Shift an array by whole voxels along its last ``len(shift)`` axes, filling with zeros (no
    counts outside the field): an (X, Y, Z) volume, or every channel of a (C, X, Y, Z) stack alike."""
    out = np.zeros_like(volume)
    sizes = volume.shape[volume.ndim - len(shift):]
    src = tuple(slice(max(0, -s), n - max(0, s)) for s, n in zip(shift, sizes))
    dst = tuple(slice(max(0, s), n - max(0, -s)) for s, n in zip(shift, sizes))
    out[(Ellipsis, *dst)] = volume[(Ellipsis, *src)]
    return out


def augment_pair(inputs: np.ndarray, ac: np.ndarray, factor: float, shift: Sequence[int],
                 scale_target: bool = True, images: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Apply one shift to the network input (C, X, Y, Z) and the target (X, Y, Z), and one
    intensity factor to the first ``images`` channels (NC, and the scatter image) and, with
    ``scale_target`` (an AC target, not a mu-map), the target."""
    shifted = shift_zero_fill(inputs, shift)
    shifted[:images] *= factor
    return shifted, shift_zero_fill(ac, shift) * (factor if scale_target else np.float32(1))


def truncation_window(nc: np.ndarray, cuts: tuple[float, float], body_fraction: float) -> tuple[int, int]:
    """The [start, stop) of the kept x range: the body's x extent (where ``nc`` exceeds
    ``body_fraction`` of its maximum) less the fractions ``cuts`` of its width on the low and high side."""
    columns = np.nonzero((nc > body_fraction * float(nc.max())).any(axis=(1, 2)))[0]
    if len(columns) == 0 or nc.max() <= 0:
        return 0, nc.shape[0]
    lo, hi = int(columns[0]), int(columns[-1]) + 1
    width = hi - lo
    start = lo + round(cuts[0] * width)
    return start, max(start, hi - round(cuts[1] * width))


def truncate(volume: np.ndarray, window: tuple[int, int]) -> np.ndarray:
    """``volume`` (..., X, Y, Z) zeroed outside ``window`` of its x axis."""
    out = np.zeros_like(volume)
    out[..., window[0] : window[1], :, :] = volume[..., window[0] : window[1], :, :]
    return out


def augment(pair: Pair, augmentation: Augmentation, draw: Draw) -> tuple[np.ndarray, np.ndarray]:
    """The augmented network input (C, X, Y, Z) and AC target (X, Y, Z) of ``pair`` under ``draw``
    (with the LV wall mask, shifted and truncated with the target, as channel 1: (2, X, Y, Z);
    :meth:`Pair.targets`).

    In the order a clinic makes them: the heart's position (shift of all channels and the
    target), the camera's field (truncation of all channels and the target; the prior remade from
    the truncated NC, because inference makes it from the NC it gets, and a prior of the whole body
    would tell the network what the truncated input no longer shows), the count level (NC and AC
    scaled, noise added to NC), the reconstruction settings (smoothing of NC and, with
    ``smooth_target``, AC; after the noise, as a post-filter smooths a reconstruction's noise).
    Noise and smoothing leave the prior as it is: it is made from a body contour on an 8 mm FWHM
    smoothed image relative to the body level, which mild noise and smoothing hardly move, and
    remaking it (0.4 s at 64^3) for every pair would cost about as much as a network step.

    A mu-map target (``pair.target`` "mu") takes the shift only (see the module docstring). A
    scatter-window image (channel 1, ``pair.images`` 2) is treated as NC: the same shift, window,
    count factor and smoothing, and its own noise (drawn after NC's from the same seed, so NC's
    draws are those of a pair without it) with the range scaled by ``pair.scatter_noise``.
    """
    counts_target = pair.target == "ac"
    images = pair.images
    inputs, ac = augment_pair(pair.inputs(), pair.ac, draw.factor, draw.shift, counts_target, images)
    wall = None if pair.wall is None else shift_zero_fill(pair.wall, draw.shift)
    if draw.cuts != (0.0, 0.0):
        window = truncation_window(inputs[0], draw.cuts, augmentation.body_fraction)
        inputs = truncate(inputs, window)
        ac = truncate(ac, window) if counts_target else ac
        wall = None if wall is None else truncate(wall, window)  # no wall where the target has no counts
        if len(inputs) > images and pair.grid is not None:
            inputs[images:] = prior_channels(pair.grid.with_array(inputs[0]), pair.prior_name, pair.protocol)
    if draw.counts != 1.0:
        noisy = augmentation.noise > 0 and draw.counts < 1
        rng = np.random.default_rng(draw.noise_seed) if noisy else None
        for c in range(images):
            image = inputs[c]
            if rng is not None:
                level = augmentation.noise * (pair.scatter_noise if c == 1 else 1.0)
                variance = level * draw.counts * (1 - draw.counts) * np.clip(image, 0, None)
                noise = rng.standard_normal(image.shape) * np.sqrt(variance)
                inputs[c] = np.clip(draw.counts * image + noise.astype(np.float32), 0, None)  # OSEM is never negative
            else:
                inputs[c] = draw.counts * image
        ac = ac * np.float32(draw.counts) if counts_target else ac
    if draw.sigma > 0:
        for c in range(images):
            inputs[c] = ndimage.gaussian_filter(inputs[c], draw.sigma, mode="constant")
        if augmentation.smooth_target and counts_target:
            ac = ndimage.gaussian_filter(ac, draw.sigma, mode="constant")
    return inputs.astype(np.float32, copy=False), with_wall(ac.astype(np.float32, copy=False), wall)


def batches(
    pairs: Sequence[Pair],
    batch_size: int,
    rng: np.random.Generator | None = None,
    augmentation: Augmentation | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (inputs, ac) batches, (B, C, X, Y, Z) and (B, 1, X, Y, Z) (B, 2, ... with the LV wall
    masks of pairs loaded with ``wall``); shuffled and augmented when ``rng`` is given."""
    order = rng.permutation(len(pairs)) if rng is not None else np.arange(len(pairs))
    for start in range(0, len(order), batch_size):
        inputs, acs = [], []
        for i in order[start : start + batch_size]:
            x, ac = pairs[i].inputs(), pairs[i].targets()
            if rng is not None and augmentation is not None:
                x, ac = augment(pairs[i], augmentation, augmentation.draw(rng))
            inputs.append(x)
            acs.append(ac)
        yield torch.from_numpy(np.stack(inputs)), torch.from_numpy(np.stack([target_channels(a) for a in acs]))


