"""Training and fine-tuning GLIDE-architecture models (used to build the embedded demo models)."""
