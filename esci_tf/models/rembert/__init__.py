"""RemBERT: a backbone built from keras-hub layers, its SentencePiece tokenizer and Hugging
Face converter (keras-hub has none of them)."""
