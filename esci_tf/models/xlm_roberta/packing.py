"""XLM-R's pair layout: <s> A </s></s> B </s>, one token type."""

from esci_tf.models.family import PairLayout


def pair_layout(tokenizer) -> PairLayout:
    """The layout with the tokenizer's own <s>, </s> and <pad> ids."""
    end = tokenizer.end_token_id
    return PairLayout(start=tokenizer.start_token_id, separators=(end, end), end=end,
                      pad=tokenizer.pad_token_id, single_segment=True)
