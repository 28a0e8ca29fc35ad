"""TF Serving warm-up requests: assets.extra/tf_serving_warmup_requests in a SavedModel.

TF Serving replays these PredictionLog records (a TFRecord file, tensorflow_serving.apis
protos) when it loads a version, so the first user request does not pay for tracing and
kernel set-up. `write_warmup(export_dir, requests)` takes {signature name: {input: values}}.
"""

import numpy as np
import tensorflow as tf

from esci_tf import files

WARMUP_PARTS = ("assets.extra", "tf_serving_warmup_requests")


def prediction_log(signature_name: str, inputs: dict):
    """One PredictionLog holding a PredictRequest for `signature_name` with `inputs`
    ({name: numpy array or list}; strings become DT_STRING tensors)."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(signature_name=signature_name))
    for name, values in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(np.asarray(values)))
    return prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))


def write_warmup(export_dir: str, requests: dict) -> str:
    """Write one PredictionLog per {signature name: inputs} to export_dir's warm-up file; returns its path."""
    tf.io.gfile.makedirs(files.join(export_dir, WARMUP_PARTS[0]))
    path = files.join(export_dir, *WARMUP_PARTS)
    with tf.io.TFRecordWriter(path) as writer:
        for signature_name, inputs in requests.items():
            writer.write(prediction_log(signature_name, inputs).SerializeToString())
    return path


def read_warmup(export_dir: str) -> list:
    """The PredictionLog records of export_dir's warm-up file."""
    from tensorflow_serving.apis import prediction_log_pb2

    path = files.join(export_dir, *WARMUP_PARTS)
    return [prediction_log_pb2.PredictionLog.FromString(record.numpy()) for record in tf.data.TFRecordDataset(path)]
