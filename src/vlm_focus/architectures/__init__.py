"""Model architectures of our own (registered with the transformers Auto classes on import)."""
