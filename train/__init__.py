"""Training layer: data loaders, features, models, training loops and evaluation."""
