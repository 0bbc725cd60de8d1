"""Built-in continual-learning methods: one module per method, each registering its name on import."""
