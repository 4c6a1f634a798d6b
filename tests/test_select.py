"""Track selection: rows by identifier, index or description regex, and heads cut to them whose
outputs equal the full model's columns."""

import numpy as np
import pytest

from seqnn import SeqnnError
from seqnn.data.selection import selected_rows, track_indices

# six tracks: an unstranded DNase, a stranded CAGE pair, an RNA pair, an unstranded ChIP
ROWS = [
    {"identifier": "dnase", "strand_pair": 0, "description": "DNASE:liver"},
    {"identifier": "cage+", "strand_pair": 2, "description": "CAGE:liver"},
    {"identifier": "cage-", "strand_pair": 1, "description": "CAGE:liver"},
    {"identifier": "rna+", "strand_pair": 4, "description": "RNA:brain"},
    {"identifier": "rna-", "strand_pair": 3, "description": "RNA:brain"},
    {"identifier": "chip", "strand_pair": 5, "description": "CHIP:H3K27ac brain"},
]


def test_identifiers_indices_and_description_regex():
    assert track_indices(ROWS, None) == [0, 1, 2, 3, 4, 5]
    assert track_indices(ROWS, ["chip", 0, "3"]) == [5, 0, 3]
    assert track_indices(ROWS, "brain$") == [3, 4, 5]
    assert track_indices(ROWS, ["^CAGE", "cage-", 1]) == [1, 2]  # each row once, order asked


def test_partners_are_appended_and_pairs_renumbered():
    chosen = track_indices(ROWS, ["chip", "cage-"], partners=True)
    assert chosen == [5, 2, 1]
    assert [r["strand_pair"] for r in selected_rows(ROWS, chosen)] == [0, 2, 1]
    # without partners, a lone stranded track becomes its own pair
    assert [r["strand_pair"] for r in selected_rows(ROWS, [5, 2])] == [0, 1]


@pytest.mark.parametrize("tracks, words", [
    (["cage+", "nope"], ["'nope'", "targets.txt", "neither an identifier"]),
    ([7], ["index 7", "targets.txt", "6 tracks"]),
    ([], ["empty"]),
])
def test_absent_track_names_it_and_the_sheet(tracks, words):
    with pytest.raises(SeqnnError) as err:
        track_indices(ROWS, tracks, where="predict.tracks", sheet="targets.txt")
    message = str(err.value)
    assert "\n" not in message and message.startswith("predict.tracks")
    assert all(w in message for w in words), message


keras = pytest.importorskip("keras")
from seqnn.model.build import build_model  # noqa: E402
from seqnn.model.select import select_tracks  # noqa: E402

PARAMS = {"model": {
    "seq_length": 256, "augment_rc": True, "augment_shift": 2, "activation": "gelu",
    "trunk": [{"name": "conv_dna", "filters": 8, "kernel_size": 7, "pool_size": 8},
              {"name": "conv_block", "filters": 12, "kernel_size": 3}],
    "head": {"name": "final", "units": len(ROWS), "activation": "softplus"},
}}


@pytest.fixture(scope="module")
def model_and_input():
    keras.utils.set_random_seed(3)
    model = build_model(PARAMS, strand_pair=[r["strand_pair"] for r in ROWS])
    codes = np.random.default_rng(0).integers(0, 4, (3, 256))
    return model, np.eye(4, dtype=np.float32)[codes]


def test_sliced_head_equals_the_full_model_columns(model_and_input):
    model, x = model_and_input
    full = np.asarray(model(x, training=False))
    small, rows, _ = select_tracks(model, ROWS, ["chip", "cage-"], partners=True)
    assert [r["identifier"] for r in rows] == ["chip", "cage-", "cage+"]
    assert small.output_shape == (None, 32, 3)
    dense = [la for la in small.layers if isinstance(la, keras.layers.Dense)][-1]
    assert dense.kernel.shape == (12, 3)  # a 3-track head, not a 6-track one sliced after
    np.testing.assert_allclose(small(x, training=False), full[..., [5, 2, 1]], rtol=1e-6,
                               atol=1e-6)


def test_summed_selection_is_the_sum_of_the_columns(model_and_input):
    model, x = model_and_input
    full = np.asarray(model(x, training=False))
    summed, rows, _ = select_tracks(model, ROWS, "CAGE", sum=True)
    assert [r["identifier"] for r in rows] == ["sum"] and rows[0]["strand_pair"] == 0
    np.testing.assert_allclose(summed(x, training=False), full[..., 1:3].sum(-1, keepdims=True),
                               rtol=1e-5, atol=1e-6)


def test_reverse_complement_switch_keeps_renumbered_pairs(model_and_input):
    """In training, SwitchReverse flips a reverse-complemented prediction back: a selected
    stranded pair must swap within the selection."""
    model, _ = model_and_input
    small, rows, _ = select_tracks(model, ROWS, ["cage+"], partners=True)
    switch = [la for la in small.layers if type(la).__name__ == "SwitchReverse"]
    assert [s.strand_pair for s in switch] == [[1, 0]]
    assert [r["strand_pair"] for r in rows] == [1, 0]


def test_head_without_a_final_dense_is_computed_whole_and_its_columns_taken(model_and_input):
    params = {"model": {**PARAMS["model"], "head": [
        {"name": "final", "units": 6}, {"name": "Cropping1D", "cropping": 2}]}}
    model, (_, x) = build_model(params), model_and_input
    full = np.asarray(model(x, training=False))
    picked, rows, indices = select_tracks(model, ROWS, ["chip", "rna+"])
    assert indices == [5, 3] and [r["strand_pair"] for r in rows] == [0, 1]
    np.testing.assert_allclose(picked(x, training=False), full[..., [5, 3]], rtol=1e-6)


def test_variant_scores_of_selected_and_summed_tracks_equal_the_full_models(model_and_input,
                                                                           tmp_path):
    from conftest import write_tiny_fasta

    from seqnn.apply.variants import read_scores, score_vcf
    from seqnn.model.build import save_model

    model, _ = model_and_input
    path = tmp_path / "m.keras"
    save_model(model, path, params=PARAMS, targets=ROWS,
               statistics={"seq_length": 256, "pool_width": 8, "crop_bp": 0})
    fasta = write_tiny_fasta(tmp_path / "g.fa")
    seq = fasta.read_text().split("\n", 1)[1].replace("\n", "")
    vcf = tmp_path / "v.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                   + "".join(f"chrI\t{p}\tv{p}\t{seq[p - 1]}\t{'A' if seq[p - 1] != 'A' else 'C'}"
                             "\t.\t.\t.\n" for p in (400, 900, 1500)))

    def scores(name, **options):
        score_vcf([str(path)], str(fasta), str(vcf), str(tmp_path / f"{name}.h5"), rc=True,
                  shifts=[0, 1], **options)
        return read_scores(str(tmp_path / f"{name}.h5"))

    full, cut = scores("full"), scores("cut", tracks=["cage-", "chip"])
    assert list(cut["track_ids"]) == ["cage-", "chip", "cage+"]  # + the partner, for rc
    np.testing.assert_allclose(cut["SAD"], full["SAD"][:, [2, 5, 1]], rtol=1e-4, atol=1e-5)
    summed = scores("sum", tracks=["CAGE", "rna+"], sum_tracks=True)
    assert list(summed["track_ids"]) == ["sum"]
    np.testing.assert_allclose(summed["SAD"][:, 0], full["SAD"][:, [1, 2, 3, 4]].sum(1),
                               rtol=1e-4, atol=1e-5)
