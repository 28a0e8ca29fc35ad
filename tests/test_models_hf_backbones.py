"""Every registry backbone from a tiny Hugging Face checkpoint: per-layer outputs (what
weighted layer pooling mixes) match transformers, through build_cross_encoder."""

import numpy as np
import pytest

pytest.importorskip("torch")
hf_fixtures = pytest.importorskip("hf_fixtures")

from esci_tf.models import build_cross_encoder  # noqa: E402

CASES = {
    "bert": ("bert", dict(), 0),
    "xlm-roberta": ("xlm_roberta", dict(layer_norm_eps=1e-5), 1),
    "deberta-v2": ("deberta_v3", dict(), 0),
    "rembert": ("rembert", dict(), 0),
}
# The separator id of the tiny checkpoints' vocabularies, where cross attention looks for it.
SEPARATOR_IDS = {"xlm-roberta": 2, "deberta-v2": 2}


@pytest.mark.parametrize("model_type", sorted(CASES))
def test_layer_outputs_match_transformers(model_type, tmp_path):
    backbone, overrides, pad_id = CASES[model_type]
    hf_fixtures.write_tiny_checkpoint(model_type, str(tmp_path), **overrides)
    rng = np.random.default_rng(0)
    ids = rng.integers(pad_id + 1, 128, size=(2, 9)).astype("int32")
    mask = np.ones_like(ids)
    mask[1, 6:] = 0
    ids[mask == 0] = pad_id
    segments = np.zeros_like(ids)
    segments[:, 4:] = 1
    segments[mask == 0] = 0
    with_segments = model_type in ("bert", "rembert")
    reference = hf_fixtures.reference_hidden_states(
        str(tmp_path), ids, mask, segments if with_segments else None)

    model = build_cross_encoder(backbone, checkpoint=str(tmp_path), pooling="weighted_layers",
                                num_pooled_layers=2, cross_attention=True,
                                separator_token_id=SEPARATOR_IDS.get(model_type))
    inputs = {"token_ids": ids, "segment_ids": segments, "padding_mask": mask}
    outputs = model.encoder(model._backbone_inputs(inputs))
    valid = mask.astype(bool)
    for layer, (ours, theirs) in enumerate(zip(outputs, reference[-2:])):
        np.testing.assert_allclose(np.asarray(ours)[valid], theirs[valid], atol=1e-4,
                                   err_msg=f"{model_type} layer {layer}")
    logits = model(inputs).numpy()
    assert logits.shape == (2, 4) and np.all(np.isfinite(logits))
