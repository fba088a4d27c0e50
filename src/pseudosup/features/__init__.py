"""Feature extractors: images in, float32 descriptors out (one row per item)."""
