"""Render one synthetic pelvic T2-weighted scan: anatomy in world millimetres, sampled on an oblique stack.

The anatomy is a set of analytic shapes in RAS world coordinates (mm) with the tumour centre at
the origin's height (z = 0): body outline with subcutaneous fat, pelvic fat, gluteal and
obturator muscles, hip bones (cortex and marrow), sacrum, bladder, a rectum with mucosa,
muscularis and a gas- or gel-filled lumen, the mesorectal fat and fascia, and a lobulated tumour
in the rectal wall. Signal is relative to subcutaneous fat (1.0) with T2-like ordering
(fluid > fat > tumour > muscle > cortex, gas ~ 0).

Each slice is averaged over ``SUBSLICES`` positions across its thickness (partial volume); the
label is the tumour's majority over the same positions. A smooth multiplicative bias field and
Rician noise are applied on the stack, and the result is scaled by a scanner gain to int16.
Subtypes follow seed §2.6 / §3.2.2: **B** bright, high contrast, sharp boundary; **D** dark,
low contrast, diffuse boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SUBSLICES = 3
#: Tumour signal (relative to fat) and boundary blur (mm, logistic scale) per subtype. B sits
#: between the muscularis (0.3) and the mesorectal fat (0.95), 20-35% below the fat, so it stands
#: out from both (seed §3.2.2: the well-detected subtype); D is close to the muscularis, with a
#: diffuse edge.
SUBTYPE_APPEARANCE = {
    "B": {"signal": (0.62, 0.76), "edge_mm": (0.15, 0.5), "texture": 0.04},
    "D": {"signal": (0.26, 0.36), "edge_mm": (2.0, 3.5), "texture": 0.07},
}
FAT, PELVIC_FAT, MESO_FAT, MUSCLE, WALL, MUCOSA, MARROW, CORTEX, FLUID, GAS, GEL = (
    1.0,
    0.9,
    0.95,
    0.3,
    0.3,
    0.7,
    0.55,
    0.08,
    1.6,
    0.03,
    1.25,
)


@dataclass(frozen=True)
class Acquisition:
    """Geometry of one oblique-axial stack.

    Args:
        inplane_mm: in-plane spacing (square pixels).
        thickness_mm: slice thickness = spacing along the slice axis.
        matrix: in-plane matrix size (X = Y).
        slices: number of slices.
        tilt_deg: rotation of the stack about the left-right axis.
        roll_deg: rotation about the anterior-posterior axis.
        centre_mm: world position of the stack centre.
    """

    inplane_mm: float
    thickness_mm: float
    matrix: int
    slices: int
    tilt_deg: float
    roll_deg: float
    centre_mm: tuple[float, float, float]

    def affine(self) -> np.ndarray:
        """4x4 voxel-to-world affine; stored L-P-S like scanner exports (x and y flipped)."""
        a, b = np.deg2rad(self.tilt_deg), np.deg2rad(self.roll_deg)
        rot_x = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
        rot_y = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
        linear = rot_y @ rot_x @ np.diag([-self.inplane_mm, -self.inplane_mm, self.thickness_mm])
        shape = np.array([self.matrix, self.matrix, self.slices], dtype=float)
        out = np.eye(4)
        out[:3, :3] = linear
        out[:3, 3] = np.asarray(self.centre_mm) - linear @ ((shape - 1) / 2)
        return out


@dataclass(frozen=True)
class Anatomy:
    """Per-case anatomy parameters (mm, world RAS; tumour height z = 0)."""

    body: tuple[float, float, float, float]  # centre x, centre y, semi-axis x, semi-axis y
    rectum: tuple[float, float, float, float]  # centre x, centre y at z=0, outer radius, wall thickness
    rectum_slope: tuple[float, float]  # d(centre)/dz (x, y): the rectum is not parallel to z
    lumen_gas: bool
    bladder_z: float  # bladder present above this height
    sacrum_z: float  # sacrum present above this height
    tumour_angle: float  # radians around the rectum
    tumour_axes: tuple[float, float, float]  # radial, circumferential, z semi-axes (mm)
    tumour_lobes: tuple[tuple[float, float, float, float, float], ...]  # amplitude, direction xyz, phase
    tumour_signal: float
    edge_mm: float
    texture: float
    texture_waves: tuple[tuple[float, float, float, float], ...]  # wave vector xyz (1/mm), phase
    bias: tuple[float, ...]  # coefficients of 1, x, y, z, x^2, y^2, z^2, xy (x, y, z in dm)
    snr: float
    gain: float


def _ellipse(x, y, cx, cy, ax, ay):
    return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2


def _tumour_frame(anat: Anatomy, x, y, z):
    """Rectum centre at height z and the tumour's ellipsoidal radius rho (1 on the plain ellipsoid)."""
    rcx, rcy, r_out, wall = anat.rectum
    cx = rcx + anat.rectum_slope[0] * z
    cy = rcy + anat.rectum_slope[1] * z
    r_centre = r_out - wall  # centred on the inner wall: thickens the wall both ways
    cos_t, sin_t = np.cos(anat.tumour_angle), np.sin(anat.tumour_angle)
    dx, dy = x - (cx + r_centre * cos_t), y - (cy + r_centre * sin_t)
    a_r, a_c, a_z = anat.tumour_axes
    u = np.stack([(dx * cos_t + dy * sin_t) / a_r, (-dx * sin_t + dy * cos_t) / a_c, z / a_z])
    rho = np.sqrt((u * u).sum(axis=0)) + 1e-6
    return cx, cy, u, rho


def _tumour_field(anat: Anatomy, x, y, z, cx, cy, u, rho):
    """Signed size field s (mm): > 0 inside the lobulated tumour, ~ distance to its boundary near it."""
    lobes = 1.0
    for amp, vx, vy, vz, phase in anat.tumour_lobes:
        lobes = lobes + amp * np.cos(3.0 * (u[0] * vx + u[1] * vy + u[2] * vz) / rho + phase)
    size = float(np.prod(anat.tumour_axes)) ** (1 / 3)
    field = (1.0 - rho / lobes) * size
    # the tumour fills the wall and bulges into the lumen, but not into its central third
    radius = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
    return np.where(radius < (anat.rectum[2] - anat.rectum[3]) * 0.35, np.minimum(field, -1.0), field)


def _signal(anat: Anatomy, x, y, z):
    """Noise-free signal (relative to fat) and tumour field at world points (1D arrays)."""
    bcx, bcy, bax, bay = anat.body
    sig = np.zeros_like(x)
    body = _ellipse(x, y, bcx, bcy, bax, bay)
    sig = np.where(body < 1, FAT, sig)
    sig = np.where(_ellipse(x, y, bcx, bcy, bax * 0.88, bay * 0.86) < 1, PELVIC_FAT, sig)
    for side in (-1, 1):
        sig = np.where(
            _ellipse(x, y, side * 0.55 * bax, bcy - 0.55 * bay, 0.3 * bax, 0.3 * bay) < 1, MUSCLE, sig
        )
        sig = np.where(_ellipse(x, y, side * 0.42 * bax, bcy, 0.1 * bax, 0.35 * bay) < 1, MUSCLE, sig)
        hip = _ellipse(x, y, side * 0.55 * bax, bcy + 0.12 * bay, 0.15 * bax, 0.25 * bay)
        sig = np.where(hip < 1, CORTEX, sig)
        sig = np.where(hip < 0.8, MARROW, sig)
    cx, cy, u, rho = _tumour_frame(anat, x, y, z)
    r_out, wall = anat.rectum[2], anat.rectum[3]
    sacrum = _ellipse(x, y, cx, cy - r_out - 38 - 0.25 * z, 32, 11)
    sig = np.where((sacrum < 1) & (z > anat.sacrum_z), CORTEX, sig)
    sig = np.where((sacrum < 0.6) & (z > anat.sacrum_z), MARROW, sig)
    bladder = _ellipse(x, y, cx, cy + r_out + 40, 38, 26)
    sig = np.where((bladder < 1) & (z > anat.bladder_z), FLUID, sig)
    radius = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
    sig = np.where(radius < r_out + 13, 0.25, sig)  # mesorectal fascia
    sig = np.where(radius < r_out + 12, MESO_FAT, sig)
    sig = np.where(radius < r_out, WALL, sig)
    sig = np.where(radius < r_out - wall + 1.5, MUCOSA, sig)
    sig = np.where(radius < r_out - wall, GAS if anat.lumen_gas else GEL, sig)
    field = (1.0 - rho) * 1e3  # far from the tumour: outside, weight 0
    # only points where the blurred tumour can show: lobes scale rho by <= 1 + sum(amp), and the
    # logistic edge is negligible (< e^-8) beyond 8 edge widths
    size = float(np.prod(anat.tumour_axes)) ** (1 / 3)
    reach = (1.0 + sum(lobe[0] for lobe in anat.tumour_lobes)) * (1.0 + 10.0 * anat.edge_mm / size)
    near = np.flatnonzero(rho < reach)
    if near.size:
        xn, yn, zn = x[near], y[near], z[near]
        f = _tumour_field(anat, xn, yn, zn, cx[near], cy[near], u[:, near], rho[near])
        # the blur is centred one edge width outside the label (infiltrative margin) and is at
        # most a quarter of the tumour size, so small diffuse tumours keep their own signal
        edge = min(anat.edge_mm, 0.25 * size)
        weight = 1.0 / (1.0 + np.exp(-np.clip((f + edge) / edge, -30, 30)))
        texture = 0.0
        for kx, ky, kz, phase in anat.texture_waves:
            texture = texture + np.cos(kx * xn + ky * yn + kz * zn + phase)
        tumour = anat.tumour_signal * (1.0 + anat.texture * texture / np.sqrt(len(anat.texture_waves)))
        sig[near] = sig[near] * (1.0 - weight) + tumour * weight
        field[near] = f
    return sig, field


def _bias(anat: Anatomy, x, y, z):
    x, y, z = x / 100.0, y / 100.0, z / 100.0
    terms = (np.ones_like(x), x, y, z, x * x, y * y, z * z, x * y)
    return np.exp(sum(c * t for c, t in zip(anat.bias, terms, strict=True)))


def render(anat: Anatomy, acq: Acquisition, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sample one case on its stack.

    Args:
        anat: anatomy and appearance.
        acq: stack geometry.
        rng: generator for the Rician noise.

    Returns:
        ``(image, label)``: int16 and uint8 arrays ``(matrix, matrix, slices)``.
    """
    affine = acq.affine()
    n, nz = acq.matrix, acq.slices
    ii, jj = (g.ravel() for g in np.meshgrid(np.arange(n), np.arange(n), indexing="ij"))
    image = np.empty((n, n, nz), dtype=np.float32)  # (X, Y, Z) noise-free, then noisy
    label = np.empty((n, n, nz), dtype=np.uint8)
    offsets = (np.arange(SUBSLICES) + 0.5) / SUBSLICES - 0.5  # positions across the slice, in slices
    for k in range(nz):
        acc = np.zeros(n * n)
        inside = np.zeros(n * n)
        for off in offsets:
            kk = k + off
            x = affine[0, 0] * ii + affine[0, 1] * jj + affine[0, 2] * kk + affine[0, 3]
            y = affine[1, 0] * ii + affine[1, 1] * jj + affine[1, 2] * kk + affine[1, 3]
            z = affine[2, 0] * ii + affine[2, 1] * jj + affine[2, 2] * kk + affine[2, 3]
            sig, field = _signal(anat, x, y, z)
            acc += sig * _bias(anat, x, y, z)
            inside += field > 0
        image[:, :, k] = (acc / SUBSLICES).reshape(n, n)
        label[:, :, k] = (inside * 2 > SUBSLICES).reshape(n, n)
    sigma = 1.0 / anat.snr  # noise sd relative to fat
    real = image + rng.normal(0.0, sigma, image.shape).astype(np.float32)
    imag = rng.normal(0.0, sigma, image.shape).astype(np.float32)
    magnitude = np.sqrt(real * real + imag * imag)  # Rician
    out = np.clip(np.rint(magnitude * anat.gain), 0, np.iinfo(np.int16).max).astype(np.int16)
    return out, label
