"""The temporal Ward merge tree equals scikit-learn's connectivity-constrained Ward."""

import numpy as np
import pytest
from scipy import sparse
from sklearn.cluster import ward_tree

from action100m.core.clustering import temporal_ward_linkage


@pytest.mark.parametrize(("n", "dim", "seed"), [(2, 3, 0), (7, 2, 1), (400, 16, 2)])
def test_same_merges_and_distances_as_sklearn(n, dim, seed):
    x = np.random.default_rng(seed).normal(size=(n, dim)).cumsum(axis=0)
    ones = np.ones(n - 1)
    chain = sparse.diags([ones, ones], [-1, 1], shape=(n, n), format="csr")
    children, _, _, _, distances = ward_tree(
        x, connectivity=chain, return_distance=True
    )
    ours = temporal_ward_linkage(x)
    assert [set(p) for p in ours[:, :2].astype(int).tolist()] == [
        set(p) for p in children.tolist()
    ]
    np.testing.assert_allclose(ours[:, 2], distances, rtol=1e-9)
    assert ours[-1, 3] == n


def test_merges_are_contiguous_and_single_frame_is_empty():
    assert temporal_ward_linkage(np.zeros((1, 5))).shape == (0, 4)
    x = np.random.default_rng(3).normal(size=(50, 4))
    link = temporal_ward_linkage(x)
    span = {i: (i, i) for i in range(50)}
    for k, (a, b, _, size) in enumerate(link):
        (lo_a, hi_a), (lo_b, hi_b) = span[int(a)], span[int(b)]
        assert hi_a + 1 == lo_b  # left cluster first, adjacent
        span[50 + k] = (lo_a, hi_b)
        assert size == hi_b - lo_a + 1


def test_identical_frames_do_not_break_ties_badly():
    link = temporal_ward_linkage(np.ones((30, 3)))
    assert (link[:, 2] == 0).all() and link[-1, 3] == 30
