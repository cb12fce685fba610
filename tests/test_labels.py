"""Canonical emotion order and per-dataset label maps."""

from __future__ import annotations

import pytest

from orsalib.data import labels as L


def test_canonical_order():
    assert L.EMOTIONS == ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral", "contempt")
    assert L.emotions(7) == L.EMOTIONS[:7] and L.emotions(8) == L.EMOTIONS
    with pytest.raises(ValueError):
        L.emotions(6)


@pytest.mark.parametrize(
    "mapping, ids",
    [(L.RAFDB_LABELS, range(1, 8)), (L.AFFECTNET_LABELS, range(0, 8)), (L.FER2013_LABELS, range(0, 7))],
)
def test_dataset_maps_are_bijective_on_their_ids(mapping, ids):
    assert sorted(mapping) == list(ids)
    assert len(set(mapping.values())) == len(mapping) and set(mapping.values()) <= set(L.EMOTIONS)


def test_native_ids():
    assert L.RAFDB_LABELS[1] == "surprise" and L.RAFDB_LABELS[6] == "anger" and L.RAFDB_LABELS[7] == "neutral"
    assert L.AFFECTNET_LABELS[0] == "neutral" and L.AFFECTNET_LABELS[7] == "contempt"
    assert [L.FER2013_LABELS[i] for i in range(7)] == list(L.EMOTIONS_7)
    assert set(L.FERPLUS_EMOTION_COLUMNS.values()) == set(L.EMOTIONS)
    assert L.OCCLUFER_CLASSES == L.EMOTIONS and len(L.OCCLUFER_CLASSES) == 8


def test_aliases_and_errors():
    assert L.canonical_name(" Happy ") == "happiness" and L.index_of("angry") == 0 and L.index_of("sad", 7) == 4
    with pytest.raises(ValueError, match="bare digit"):
        L.canonical_name("3")
    with pytest.raises(ValueError, match="unknown emotion"):
        L.canonical_name("bored")
    with pytest.raises(ValueError, match="not part of the 7-class"):
        L.index_of("contempt", 7)


def test_imagefolder_order():
    folders = ["surprise", "angry", "happy", "neutral", "sad", "fear", "disgust"]
    order = L.imagefolder_order(folders)
    assert order == {0: "anger", 1: "disgust", 2: "fear", 3: "happiness", 4: "neutral", 5: "sadness", 6: "surprise"}
