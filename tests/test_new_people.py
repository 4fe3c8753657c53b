"""The new-people scoring and the table that splits lost letters between the hand detector and the classifier."""

import numpy as np

from helpers import manifest_rows, need_dataset
from training.new_people import LIS_VIEWS, PROTOCOLS, lis_view, lost_letters_table, score


def test_score_counts_missing_hands_as_wrong_and_typed_no_letter_hands_as_false_letters():
    labels = ["A", "B", "none"]
    truth = np.array(["A", "A", "B", "B", "none", "none"])
    detected = np.array([True, False, True, True, True, True])
    probs = np.array([[0.9, 0.1, 0.0],  # A read right
                      [0.9, 0.1, 0.0],  # no hand found: wrong whatever the classifier says
                      [0.2, 0.8, 0.0],  # B read right
                      [0.7, 0.3, 0.0],  # B misread as A
                      [0.7, 0.2, 0.1],  # a no-letter hand typed as A (confidence 0.7 >= 0.6)
                      [0.1, 0.1, 0.8]])  # a no-letter hand read as none: not typed
    out = score(probs, detected, truth, labels, ["A", "B"])
    assert out["images"] == 4 and out["no_letter_images"] == 2
    assert out["detection_rate"] == 0.75
    assert out["accuracy"] == 0.5
    assert out["false_letter_rate"] == 0.5


def test_lost_letters_table_splits_losses_between_detector_and_classifier():
    signer = next(p for p in PROTOCOLS if p.alphabet == "asl" and p.test_signer)
    dataset = next(p for p in PROTOCOLS if p.alphabet == "asl" and not p.test_signer)
    by = {("asl-x", signer.slug): {"detection_rate": 0.8, "accuracy": 0.6},
          ("asl-x", dataset.slug): {"detection_rate": 1.0, "accuracy": 0.9}}
    lines = lost_letters_table("asl-x", [signer, dataset], by)
    row = next(l for l in lines if l.startswith(f"| {signer.name} |"))
    # 80% found, 75% of those read right, 20% of all images lost to no hand, 20% to misreading
    assert row.split("|")[2:6] == [" 80.0% ", " 75.0% ", " 20.0% ", " 20.0% "]
    mean = next(l for l in lines if l.startswith("| mean of the leave-one-dataset-out rows |"))
    assert "**100.0%** | **90.0%** | **0.0%** | **10.0%**" in mean


def test_every_lis_photo_names_its_camera():
    assert lis_view("A/a_ANTONIA_13_left.JPG") == "left" and lis_view("B/b_MIKE_2_Front.png") == "front"
    assert lis_view("A/a_left_hand.JPG") is None  # a view word that is not the suffix names no camera
    views = [lis_view(r["path"]) for r in manifest_rows(need_dataset("lis"))]
    assert None not in views and sorted(set(views)) == sorted(LIS_VIEWS)


def test_shared_letters_rule_and_table():
    from training.shared_letters import rates_table, shared

    rates = {"A": {"x": 0.9, "y": 0.7}, "E": {"x": 0.1, "y": 0.3}, "D": {"x": 0.3, "y": 0.7}}
    assert shared(rates) == ["A", "D"]  # the mean over the datasets decides, not one dataset
    table = rates_table(rates, ["x", "y"])
    assert "| E | 10% | 30% | 20% | no |" in table and "| D | 30% | 70% | 50% | yes |" in table


def test_lis_model_reads_the_asl_webcam_persons_shared_letters_as_themselves_and_not_e_m_n_t():
    """The premise of the lis-v3-asl recipes on real data: the shipped LIS model, which never saw ASL data, reads an
    ASL webcam person's A, B, C, F, I, L, V, W, Y as the same letters, and their E, M, N, T (other handshapes) not."""
    import os

    import pytest

    root = os.environ.get("FINGERSPELL_DATASETS")
    if not root or not os.path.isdir(os.path.join(root, "asl_webcam_landmarks")):
        pytest.skip("needs $FINGERSPELL_DATASETS with asl_webcam_landmarks")
    from training.experiments import SHARED_WITH_ASL
    from training.shared_letters import same_letter_rates

    rates = same_letter_rates("lis-letters", root, ["asl_webcam_landmarks"])
    for letter in "ABCFILVWY":
        assert rates[letter]["asl_webcam_landmarks"] >= 0.9, letter
    for letter in "EMNT":
        assert rates[letter]["asl_webcam_landmarks"] < 0.5 and letter not in SHARED_WITH_ASL, letter
