"""Built-in benchmarks: one module per family, each registering its names on import."""
