"""DeBERTa-v3 and mDeBERTa-v3: keras-hub's backbone and tokenizer, and a Hugging Face converter
(keras-hub has none) for checkpoints of model_type "deberta-v2" in the v3 layout."""
