"""Interpretation figures: the values drawn equal the input, and each figure saves as PNG."""

import numpy as np
import pytest
from matplotlib.colors import to_hex
from test_plots import png_size

from seqnn import SeqnnError
from seqnn.plots import interpret as I
from seqnn.plots.style import save

rng = np.random.default_rng(0)


def saved_png(fig, path):
    save(fig, path)
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def is_message(fig):
    (ax,) = fig.axes
    return not ax.axison and len(ax.texts) == 1


def test_logo_letters_are_the_contributions(tmp_path):
    """Each letter's height and side of the axis give back the matrix (NaN and 0: no letter),
    at the genome positions; the colour tells the base."""
    contrib = rng.normal(size=(10, 4))
    contrib[3] = 0
    contrib[5, 1] = np.nan
    fig = I.logo(contrib, start=100, chrom="chrI", title="rs1")
    saved_png(fig, tmp_path / "logo.png")
    (ax,) = fig.axes
    base = {to_hex(c): b for b, c in I.BASE_COLORS.items()}
    drawn = np.zeros((10, 4))
    for patch in ax.patches:
        box = patch.get_path().get_extents()
        pos = round((box.x0 + box.x1) / 2) - 100
        sign = 1 if box.y0 >= -1e-9 else -1
        assert sign > 0 or box.y1 <= 1e-9  # a letter lies wholly on one side of the axis
        drawn[pos, "ACGT".index(base[to_hex(patch.get_facecolor())])] += sign * box.height
    assert len(ax.patches) == 10 * 4 - 5
    np.testing.assert_allclose(drawn, np.nan_to_num(contrib), atol=1e-6)
    assert ax.get_xlabel() == "chrI position" and ax.get_title() == "rs1"
    assert ax.get_xlim()[0] < 100 < 109 < ax.get_xlim()[1]
    assert is_message(I.logo(np.zeros((0, 4))))
    with pytest.raises(SeqnnError, match=r"logo: got shape \(10, 3\); give \[positions, 4\]"):
        I.logo(np.zeros((10, 3)))


def test_ism_heatmap_cells_and_reference(tmp_path):
    """The cells hold the scores (bases by positions), in a colormap centred at 0; a dot sits on
    each reference base (none at N)."""
    ism = rng.normal(size=(30, 4))
    ref = "ACGTN" * 6
    fig = I.ism_heatmap(ism, ref, start=10, chrom="chrII", title="ism")
    saved_png(fig, tmp_path / "ism.png")
    ax = fig.axes[0]
    mesh, dots = ax.collections
    np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(4, 30), ism.T)
    limit = np.abs(ism).max()
    np.testing.assert_allclose(mesh.get_clim(), (-limit, limit))
    assert mesh.get_cmap().name == "RdBu_r"
    assert mesh.norm(0) == pytest.approx(0.5)
    codes = np.array(["ACGTN".index(b) for b in ref])
    keep = codes < 4
    np.testing.assert_allclose(dots.get_offsets(),
                               np.stack([np.flatnonzero(keep) + 0.5, codes[keep] + 0.5], 1))
    assert [t.get_text() for t in ax.get_yticklabels()] == list("ACGT")
    assert ax.get_xticklabels()[0].get_text() == "10" and ax.get_xlabel() == "chrII position"
    codes_fig = I.ism_heatmap(ism, codes)  # codes work as the string does
    np.testing.assert_allclose(codes_fig.axes[0].collections[1].get_offsets(),
                               dots.get_offsets())
    assert is_message(I.ism_heatmap(np.zeros((0, 4)), ""))
    with pytest.raises(SeqnnError, match="3 reference bases for 30 positions"):
        I.ism_heatmap(ism, "ACG")


def test_variant_effects_points_are_the_scores(tmp_path):
    """One violin and the variants' points per shown track, in order; NaN left out; many
    variants drawn as violins only; no variant gives a message."""
    ids = ["g", "c", "gc"]
    sad = rng.normal(size=(40, 3))
    sad[7, 2] = np.nan
    fig = I.variant_effects(sad, ids)
    saved_png(fig, tmp_path / "sad.png")
    ax = fig.axes[0]
    points = [c for c in ax.collections if len(c.get_offsets()) > 1]
    assert len(points) == 3
    for t, coll in enumerate(points):
        xy = np.asarray(coll.get_offsets())
        np.testing.assert_allclose(np.sort(xy[:, 1]), np.sort(sad[~np.isnan(sad[:, t]), t]))
        assert np.all(np.abs(xy[:, 0] - t) < 0.5)
    assert [t.get_text() for t in ax.get_xticklabels()] == ids
    assert ax.get_ylabel() == "SAD" and "40 variant(s)" in ax.get_title()
    picked = I.variant_effects(sad, ids, metric="logFC", tracks=["gc", "g"]).axes[0]
    assert [t.get_text() for t in picked.get_xticklabels()] == ["g", "gc"]
    many = I.variant_effects(rng.normal(size=(I.STRIP_MAX + 1, 2)), ["a", "b"])
    assert all(len(c.get_offsets()) <= 1 for c in many.axes[0].collections)
    saved_png(many, tmp_path / "many.png")
    empty = I.variant_effects(np.zeros((0, 3)), ids)
    assert is_message(empty)
    saved_png(empty, tmp_path / "empty.png")
    with pytest.raises(SeqnnError, match="plots.tracks: nope not in the track sheet"):
        I.variant_effects(sad, ids, tracks=["nope"])
    with pytest.raises(SeqnnError, match=r"shape \(40, 3\) for 2 track identifiers"):
        I.variant_effects(sad, ids[:2])


def test_region_figure_picks_the_track_focused_on_the_region(tmp_path):
    """Substitutions change track b by more, relative to its value, though a's gradients are
    larger and focused there: b is drawn; a region the files lack gets a figure saying so."""
    import h5py

    from seqnn.plots.interpret import workflow_plots

    rng = np.random.default_rng(0)
    L, W, K = 40, 10, 2
    x = np.eye(4, dtype=np.uint8)[rng.integers(0, 4, L)]
    g = np.zeros((L, 4, K), np.float32)
    g[18:22, :, 0] = 5 * rng.normal(size=(4, 4))  # a's gradients: large, on the shown bases
    g[:, :, 1] = rng.normal(size=(L, 4))  # b's: small, spread
    grads, ism = tmp_path / "g.h5", tmp_path / "i.h5"
    table = {"chrom": np.array([b"chr1"]), "name": np.array([b"site"]),
             "strand": np.array([b"+"]), "identifiers": np.array([b"a", b"b"])}
    with h5py.File(grads, "w") as f:
        for k, v in table.items():
            f[k] = v
        f["seqs"], f["grads"], f["start"] = x[None], g[None], np.array([100])
    with h5py.File(ism, "w") as f:
        for k, v in table.items():
            f[k] = v
        f["seqs"], f["start"], f["seq_start"] = x[None, 15:25], np.array([115]), np.array([100])
        centre = rng.normal(size=(1, W, 4, K)).astype(np.float32)
        centre[..., 0] *= 10  # 10x the change of b on a track 100x larger: relatively 0.1x
        f["centre"], f["ref"] = centre, np.array([[100.0, 1.0]], np.float32)
    out = {"region0": str(tmp_path / "region0.png"), "region1": str(tmp_path / "region1.png")}
    workflow_plots(str(grads), str(ism), None, out, width=W)
    assert png_size(tmp_path / "region0.png")[0] > 300 and (tmp_path / "region1.png").is_file()

    from seqnn.plots.interpret import _read, _region_figure

    fig = _region_figure(_read(str(grads)), _read(str(ism)), 0, W)
    title = fig.axes[0].get_title()
    assert title == "site (+) chr1:116-125 · track b", title
