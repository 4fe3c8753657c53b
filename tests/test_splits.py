import numpy as np
import pytest

from training.data import source_photo_id
from training.splits import (grouped_stratified_indices, leave_one_signer_out, limit_per_class, signer_split, source_split, stratified_indices,
                             stratified_split)

LABELS = np.array(list("AAAAAAAAAABBBBBBBBBBCCCCCCCCCC"))
SIGNERS = np.array(["s1", "s2", "s3"] * 10)


def test_stratified_keeps_class_proportions():
    sp = stratified_split(LABELS, val=0.2, test=0.2, seed=3)
    sp.check_disjoint()
    assert len(sp.train) + len(sp.val) + len(sp.test) == len(LABELS)
    for part, n in ((sp.train, 6), (sp.val, 2), (sp.test, 2)):
        for c in "ABC":
            assert (LABELS[part] == c).sum() == n
    again = stratified_split(LABELS, val=0.2, test=0.2, seed=3)
    assert np.array_equal(again.test, sp.test)
    with pytest.raises(ValueError):
        stratified_indices(LABELS, (0.5, 0.6))


def test_signer_split_never_leaks_a_signer():
    sp = signer_split(SIGNERS, LABELS, test_signers=["s2"])
    sp.check_disjoint()
    assert set(SIGNERS[sp.test]) == {"s2"}
    assert "s2" not in set(SIGNERS[sp.train]) | set(SIGNERS[sp.val])
    sp = signer_split(SIGNERS, LABELS, test_signers=["s1"], val_signers=["s3"])
    assert set(SIGNERS[sp.val]) == {"s3"} and set(SIGNERS[sp.train]) == {"s2"}
    with pytest.raises(ValueError, match="not in the data"):
        signer_split(SIGNERS, LABELS, test_signers=["nobody"])


def test_leave_one_signer_out_covers_everyone_once():
    folds = list(leave_one_signer_out(SIGNERS, LABELS))
    assert [name for name, _ in folds] == ["s1", "s2", "s3"]
    tested = np.concatenate([sp.test for _, sp in folds])
    assert sorted(tested.tolist()) == list(range(len(LABELS)))


def test_source_split():
    src = np.array(["train", "validation", "test", "signer_test"] * 3)
    sp = source_split(src)
    assert set(src[sp.train]) == {"train"} and set(src[sp.val]) == {"validation"} and set(src[sp.test]) == {"test"}


def test_limit_per_class():
    keep = limit_per_class(LABELS, np.arange(len(LABELS)), k=3, seed=1)
    assert len(keep) == 9 and all((LABELS[keep] == c).sum() == 3 for c in "ABC")


def test_copies_of_one_photo_stay_together():
    rel = [f"{c}/{c}{i}_jpg.rf.{h}.jpg" for c in "AB" for i in range(6) for h in ("aa11", "bb22", "cc33")]
    groups = [source_photo_id(r) for r in rel]
    assert groups[0] == "A/A0" and len(set(groups)) == 12
    labels = [r[0] for r in rel]
    tr, va = grouped_stratified_indices(labels, groups, (0.5, 0.5), seed=0)
    g = np.array(groups)
    assert not set(g[tr]) & set(g[va]) and len(tr) == len(va) == 18
    assert source_photo_id("A/a_GIULIA_25_front.JPG") == "A/a_GIULIA_25_front.JPG"
