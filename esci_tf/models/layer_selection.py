"""A backbone with fewer transformer layers, initialised from a deeper one's (a distilled student).

`keep_layers(backbone, n)` rebuilds the backbone from its config with `num_layers = n` and copies
every weight: the embeddings, the pooler and the layer norms outside the layers as they are, and
the `n` layers `kept_layers(num_layers, n)` chooses into the new layers 0..n-1 in order. The
choice spreads the kept layers evenly from the first to the last (6 -> 2 keeps 0 and 5; 6 -> 3
keeps 0, 3 and 5), as DistilBERT kept every other layer: the first layer reads the embeddings it
was trained on, and the last one gives the representation the pretrained pooler was trained on.
On the ESCI sample a 2-layer MiniLM student kept this way and one of the first two layers scored
the same within the noise (bench/README.md, "Distilled student"). Every family of
esci_tf.models.registry names its layers in `backbone.transformer_layers` and their weights under
the layer's name, so one copy serves them all; a weight without its counterpart raises ValueError
naming it.

>>> kept_layers(6, 2), kept_layers(6, 3), kept_layers(12, 4), kept_layers(3, 3), kept_layers(6, 1)
((0, 5), (0, 3, 5), (0, 4, 7, 11), (0, 1, 2), (0,))
>>> import keras_hub
>>> teacher = keras_hub.models.BertBackbone(vocabulary_size=50, num_layers=3, num_heads=2, hidden_dim=8,
...                                         intermediate_dim=16, max_sequence_length=16)
>>> keep_layers(teacher, 2).num_layers
2
"""

import numpy as np


def kept_layers(num_layers: int, keep: int) -> tuple:
    """The indices of the `keep` layers (of `num_layers`) a student keeps: evenly spread, the
    first and (from 2 on) the last among them; ValueError unless 1 <= keep <= num_layers."""
    if not 1 <= keep <= num_layers:
        raise ValueError(f"keep_layers={keep}: the backbone has {num_layers} transformer layers (keep 1 to "
                         f"{num_layers})")
    return tuple(int(i) for i in np.floor(np.linspace(0, num_layers - 1, keep) + 0.5))


def keep_layers(backbone, keep: int):
    """A copy of `backbone` with the `keep` layers kept_layers chooses (the backbone itself when it
    has that many); see the module docstring."""
    layers = backbone.transformer_layers
    kept = kept_layers(len(layers), keep)
    if keep == len(layers):
        return backbone
    config = backbone.get_config()
    config["num_layers"] = keep
    student = type(backbone).from_config(config)
    source_of = {new.name: layers[old].name for new, old in zip(student.transformer_layers, kept)}
    dropped = {layer.name for layer in layers} - set(source_of.values())
    teacher_weights = {weight.path: weight for weight in backbone.weights}
    used = set()
    for weight in student.weights:
        head, _, rest = weight.path.partition("/")
        path = "/".join(filter(None, (source_of.get(head, head), rest)))
        source = teacher_weights.get(path)
        if source is None or tuple(source.shape) != tuple(weight.shape):
            raise ValueError(f"{type(backbone).__name__} with {keep} of its {len(layers)} layers: no weight "
                             f"{path} of shape {tuple(weight.shape)} to copy into {weight.path}")
        weight.assign(source.numpy())
        used.add(path)
    left = [p for p in teacher_weights if p not in used and p.partition("/")[0] not in dropped]
    if left:
        raise ValueError(f"{type(backbone).__name__} with {keep} of its {len(layers)} layers leaves weights "
                         f"outside the dropped layers uncopied: {', '.join(left)}")
    return student
