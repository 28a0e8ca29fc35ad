"""BERT (and MiniLM, e.g. all-MiniLM-L6-v2): keras-hub's BertBackbone with Hugging Face's exact
GELU, a WordPiece tokenizer with Hugging Face's normalization, keras-hub's converter."""
