"""Keras multi-label classifiers on VGGish embeddings."""
