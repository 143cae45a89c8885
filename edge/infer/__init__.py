"""Model loading and inference: face detector, face and speech classifiers, speech features."""
