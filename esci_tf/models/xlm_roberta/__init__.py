"""XLM-RoBERTa (and InfoXLM): keras-hub's backbone, tokenizer and converter; pairs are packed
<s> A </s></s> B </s> with one token type."""
