"""Which ops a SavedModel needs, and whether the stock TF Serving 2.20 model server has them.

The stock tensorflow_model_server links TensorFlow's core kernels and one target of
tensorflow-text, `@org_tensorflow_text//tensorflow_text:ops_lib`; an op outside both makes the
server fail to load the model ("Op type not registered"). `saved_model_ops(export_dir)` lists
every op of a SavedModel (the graph of every signature and concrete function, and the function
library they call); `unservable_ops` is what the stock server would lack.
"""

import subprocess
import sys

import tensorflow as tf

# The ops registered by tensorflow-text's ops_lib, the text ops the stock TF Serving 2.20.0
# model server links. Source: tensorflow/serving tag 2.20.0 (commit
# bc7e9d2b9a419294c4526e293c2df8727b0d3116), tensorflow_serving/model_servers/BUILD,
# SUPPORTED_TENSORFLOW_OPS = [..., "@org_tensorflow_text//tensorflow_text:ops_lib", ...], with
# tensorflow/text pinned to v2.20.0 in tensorflow_serving/workspace.bzl; tensorflow/text tag
# v2.20.0 (commit 54015a801f4ebcf92149dca5140b3b3fa64bddbe), tensorflow_text/BUILD, cc_library
# ops_lib: the *_cc targets below, whose op definitions are tensorflow_text/core/ops/*.cc. The
# op names are what each target's shared library (python/ops/_<target>.so of the
# tensorflow-text 2.20.1 wheel) registers when loaded alone. Not in ops_lib: RougeL
# (text_similarity_metric_ops has no _cc target there), and the Python-only ops.
TF_SERVING_TEXT_OPS = {
    "boise_offset_converter": ("TFText>BoiseTagsToOffsets", "TFText>OffsetsToBoiseTags"),
    "byte_splitter": ("TFText>ByteSplitByOffsets", "TFText>ByteSplitWithOffsets"),
    "constrained_sequence_op": ("ConstrainedSequence",),
    "fast_bert_normalizer": ("FastBertNormalize",),
    "fast_sentencepiece_tokenizer": ("TFText>FastSentencepieceDetokenize", "TFText>FastSentencepieceTokenize"),
    "fast_wordpiece_tokenizer": ("FastWordpieceTokenizeWithOffsets", "TFText>FastWordpieceDetokenize"),
    "mst_ops": ("MaxSpanningTree",),
    "ngrams_op": ("TFText>NgramsStringJoin",),
    "normalize_ops": ("CaseFoldUTF8", "FindSourceOffsets", "NormalizeUTF8", "NormalizeUTF8WithOffsetsMap"),
    "phrase_tokenizer": ("PhraseTokenize", "TFText>PhraseDetokenize"),
    "regex_split_ops": ("RegexSplitWithOffsets",),
    "sentence_breaking_ops": ("SentenceFragments",),
    "sentencepiece_tokenizer": ("SentencepieceDetokenizeOp", "SentencepieceIdToStringOp", "SentencepieceOp",
                                "SentencepieceStringToIdOp", "SentencepieceTokenizeOp",
                                "SentencepieceTokenizeWithOffsetsOp", "SentencepieceVocabSizeOp"),
    "split_merge_from_logits_tokenizer": ("TokenizerFromLogits",),
    "split_merge_tokenizer": ("SplitMergeTokenizeWithOffsets",),
    "state_based_sentence_breaker_op": ("SentenceFragmentsV2",),
    "trimmer_ops": ("TFText>RoundRobinGenerateMasks", "TFText>RoundRobinTrim"),
    "unicode_script_tokenizer": ("UnicodeScriptTokenizeWithOffsets",),
    "utf8_binarize_op": ("TFText>Utf8Binarize",),
    "whitespace_tokenizer": ("WhitespaceTokenizeWithOffsets",),
    "whitespace_tokenizer_v2": ("TFText>WhitespaceTokenizeWithOffsetsV2",),
    "wordpiece_tokenizer": ("WordpieceTokenizeWithOffsets",),
}
SERVING_TEXT_OPS = frozenset(op for ops in TF_SERVING_TEXT_OPS.values() for op in ops)
# Core ops whose kernels call back into Python: registered, but no model server can run them.
PYTHON_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})

_CORE_OPS_SCRIPT = """
from tensorflow.core.framework import op_def_pb2
from tensorflow.python.client import pywrap_tf_session as session
ops = op_def_pb2.OpList()
ops.ParseFromString(session.TF_GetBuffer(session.TF_GetAllOpList()))
print("\\n".join(sorted(op.name for op in ops.op)))
"""


def saved_model_ops(export_dir: str) -> set:
    """Every op type in the SavedModel's graphs and function library (function calls by name
    are not ops, so library function names are left out)."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(f"{export_dir.rstrip('/')}/saved_model.pb", "rb") as stream:
        proto.ParseFromString(stream.read())
    ops, functions = set(), set()
    for meta_graph in proto.meta_graphs:
        ops.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            functions.add(function.signature.name)
            ops.update(node.op for node in function.node_def)
    return ops - functions


def tensorflow_core_ops() -> frozenset:
    """The ops TensorFlow itself registers: those of a fresh process that imports only tensorflow."""
    listed = subprocess.run([sys.executable, "-c", _CORE_OPS_SCRIPT], check=True, capture_output=True, text=True)
    return frozenset(listed.stdout.split())


def unservable_ops(export_dir: str, core_ops=None) -> list:
    """The SavedModel's ops the stock TF Serving 2.20 server lacks (sorted; [] when it serves)."""
    core_ops = tensorflow_core_ops() if core_ops is None else core_ops
    return sorted(saved_model_ops(export_dir) - ((core_ops - PYTHON_OPS) | SERVING_TEXT_OPS))
