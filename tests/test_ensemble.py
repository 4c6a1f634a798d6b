"""Shift / reverse-complement ensembles against a hand-made model with known outputs."""

import numpy as np

from seqnn.apply.ensemble import predict_augmented, reverse_complement_one_hot, shift_one_hot


class CountModel:
    """Per 4-bp bin: track 0 counts A, track 1 counts T (so RC swaps them), track 2 counts C+G."""

    def __call__(self, x, training=False):
        x = np.asarray(x)
        bins = x.reshape(x.shape[0], -1, 4, 4).sum(2)  # [B, L/4, base]
        return np.stack([bins[..., 0], bins[..., 3], bins[..., 1] + bins[..., 2]], -1)


def _one_hot(codes):
    return (np.asarray(codes)[..., None] == np.arange(4)).astype(np.float32)


def test_shift_and_reverse_complement():
    x = _one_hot([[0, 1, 2, 3, 4, 0, 0, 3]])
    np.testing.assert_array_equal(shift_one_hot(x, 2)[0, 2:], x[0, :-2])
    assert shift_one_hot(x, 2)[0, :2].sum() == 0 and shift_one_hot(x, -3)[0, -3:].sum() == 0
    rc = reverse_complement_one_hot(x)  # ACGTNAAT -> ATTNACGT
    np.testing.assert_array_equal(rc[0].argmax(1)[[0, 1, 2, 4, 5, 6, 7]], [0, 3, 3, 0, 1, 2, 3])
    assert rc[0, 3].sum() == 0


def test_rc_average_with_strand_pair_equals_forward_for_symmetric_model():
    rng = np.random.default_rng(0)
    x = _one_hot(rng.integers(0, 4, (3, 32)))
    model = CountModel()
    forward = model(x)
    # A-count and T-count are each other's strand pair; C+G is unstranded
    both = predict_augmented(model, x, rc=True, strand_pair=[1, 0, 2])
    np.testing.assert_allclose(both, forward)
    # without the swap the RC copy puts T counts in the A track: the average mixes them
    mixed = predict_augmented(model, x, rc=True, strand_pair=None)
    np.testing.assert_allclose(mixed[..., 0], (forward[..., 0] + forward[..., 1]) / 2)


def test_shift_average_hand_computed():
    x = _one_hot([[0] * 8 + [1] * 8])  # AAAAAAAACCCCCCCC
    got = predict_augmented(CountModel(), x, shifts=[-1, 0, 1])
    # bins of A counts: shift 0 -> [4,4,0,0]; shift +1 -> [3,4,1,0]; shift -1 -> [4,3,0,0]
    np.testing.assert_allclose(got[0, :, 0], np.mean([[4, 4, 0, 0], [3, 4, 1, 0], [4, 3, 0, 0]],
                                                      0))
