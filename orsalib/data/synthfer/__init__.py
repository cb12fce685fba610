"""SynthFER: the embedded default dataset of procedurally drawn faces with exact ground truth (one job per file).

Every image is drawn (numpy + PIL only) from one face geometry in a canonical face frame, so its 68 iBUG 300-W
landmarks and its 11-class LaPa-style parsing map agree with the pixels by construction:

- identity: face width/length/jaw taper, skin tone, eye spacing/size/tilt, brow thickness/arch, nose and mouth
  size, resting mouth curvature, hair style and colour (one random draw per identity id);
- expression: the 7 basic expressions (+ contempt) as prototypes over action-unit-like parameters (:data:`AUS`,
  after the FACS/EMFACS prototypes: e.g. happiness = AU6 + AU12, surprise = AU1 + AU2 + AU5 + AU26), scaled by a
  random intensity per sample so that classes overlap at low intensity (neutral = near-zero action units);
- pose (rotation, scale, shift), a lighting gradient, sensor noise and background clutter;
- occluders drawn on top (:data:`OCCLUDERS`): hand, sunglasses, medical mask, scarf, object (cup, phone, blob)
  and a second, smaller face. Occluder pixels are background (0) in the parsing map, and each landmark carries a
  visibility flag (False when an occluder covers it or touches it within one pixel).

Coordinates: landmarks are x, y in [0, 1] of the image, pixel ``i`` covering ``[i / S, (i + 1) / S)``.
Parsing classes (LaPa): 0 background, 1 skin, 2 left brow, 3 right brow, 4 left eye, 5 right eye, 6 nose,
7 upper lip, 8 inner mouth, 9 lower lip, 10 hair; "left" is the subject's left (image right).

Determinism: a sample depends only on ``(seed, index)`` (and the explicit label/identity/occluder arguments):
everything comes from ``default_rng([seed, index])``, the face first with a fixed number of draws and the occluder
last, so the paired ``valid_occluded`` split shows exactly the faces of ``valid`` with an occluder added.

Files: :mod:`.face` (identities, expressions, the face geometry), :mod:`.render` (a face drawn into an image and
its parsing map), :mod:`.occluders` (the registered occluder painters), :mod:`.sample` (one sample from
``(seed, index)``), :mod:`.build` (the dataset folder on disk).

Speed: the face layout is affine in ~30 coefficients (identity proportions combined with the action units), so all
~700 points of a face are one matrix product with a cached basis; polygons are filled by PIL and all per-pixel work
is a handful of vectorised numpy operations.
"""

from __future__ import annotations

from typing import Any

from .build import (
    GENERATOR_VERSION,
    MANIFEST_COLUMNS,
    build_synthfer,
    default_root,
    synthfer_from_config,
    synthfer_params,
)
from .face import (
    AU_NOISE,
    AUS,
    DEFAULT_IDENTITY,
    INTENSITY_RANGE,
    JAW_POWERS,
    NEUTRAL_INTENSITY,
    Frame,
    Identity,
    expression_aus,
    face_geometry,
    identity_params,
    sample_identity,
)
from .occluders import OccluderCanvas, occluder_kinds, paint_occluder, synthfer_occluders
from .sample import SynthSample, render_sample


def __getattr__(name: str) -> Any:
    # OCCLUDERS / OCCLUDER_KINDS are read from the registry on access, so later registrations are included.
    if name == "OCCLUDER_KINDS":
        return occluder_kinds()
    if name == "OCCLUDERS":
        return ("none",) + occluder_kinds()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AUS",
    "AU_NOISE",
    "DEFAULT_IDENTITY",
    "GENERATOR_VERSION",
    "INTENSITY_RANGE",
    "JAW_POWERS",
    "MANIFEST_COLUMNS",
    "NEUTRAL_INTENSITY",
    "Frame",
    "Identity",
    "OccluderCanvas",
    "SynthSample",
    "build_synthfer",
    "default_root",
    "expression_aus",
    "face_geometry",
    "identity_params",
    "occluder_kinds",
    "paint_occluder",
    "render_sample",
    "sample_identity",
    "synthfer_from_config",
    "synthfer_occluders",
    "synthfer_params",
]
