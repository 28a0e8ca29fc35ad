"""TrainingModel on the real CrossEncoder: one FGM and one AWP step (mixed bfloat16 too)."""

import keras
import numpy as np
import pytest

from esci_tf import models
from esci_tf.training import adversarial
from esci_tf.training.training_model import TrainingModel
from training_fixtures import make_batch

CONFIG = dict(vocabulary_size=60, num_layers=2, num_heads=2, hidden_dim=32,
              intermediate_dim=64, max_sequence_length=16)


@pytest.mark.parametrize("backbone,mode,policy", [
    ("bert", "fgm", None),
    ("xlm_roberta", "awp", "mixed_bfloat16"),
])
def test_cross_encoder_adversarial_step(backbone, mode, policy, tmp_path):
    model = models.build_cross_encoder(
        backbone, backbone_config=CONFIG, dropout=0.0, dtype_policy=policy,
        pooling="weighted_layers", num_pooled_layers=2, cross_attention=True,
        separator_token_id=2,  # xlm_roberta's </s>; bert finds the query by segment ids
    )
    targets = adversarial.select_awp_variables(model.trainable_variables)
    assert len(targets) == 12 and all(v.path.startswith("transformer_layer_") for v in targets)
    before = [keras.ops.convert_to_numpy(v) for v in model.weights]
    trainer = TrainingModel(model, adversarial=mode, awp_start_loss=10.0)
    trainer.compile(optimizer=keras.optimizers.SGD(0.0))
    x, y = make_batch(4)
    logs = trainer.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"]) and logs["adv_loss"] != pytest.approx(logs["loss"], abs=1e-6)
    for got, want in zip((keras.ops.convert_to_numpy(v) for v in model.weights), before):
        np.testing.assert_array_equal(got, want)
    # Training then continues normally and the wrapped model's logits come back from predict.
    trainer.optimizer.learning_rate.assign(0.1)
    trainer.train_on_batch(x, y)
    logits = trainer.predict(x, verbose=0)
    assert logits.shape == (4, 4)
    # Saving the trainer writes the CrossEncoder itself.
    trainer.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(loaded, models.CrossEncoder)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), logits, atol=1e-5)
