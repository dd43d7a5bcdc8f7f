"""GLIDE Studio: text-guided image editing with OpenAI's GLIDE diffusion models."""

__version__ = "0.1.0"
