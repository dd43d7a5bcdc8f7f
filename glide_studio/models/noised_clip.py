"""GLIDE's noised CLIP: an image encoder that also sees the diffusion timestep, and a text encoder.

Parameter names follow OpenAI's ``clip/image-enc`` and ``clip/text-enc`` checkpoints.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import CLIPConfig
from .layers import attention

CLIP_CHANNEL_MEANS = (122.77093945, 116.74601272, 104.09373519)
CLIP_CHANNEL_STDS = (68.50053285, 66.63215831, 70.32316309)


class CLIPLayerNorm(nn.Module):
    def __init__(self, n_state: int):
        super().__init__()
        self.g = nn.Parameter(torch.ones(n_state))
        self.b = nn.Parameter(torch.zeros(n_state))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.float(), (x.shape[-1],), self.g, self.b, eps=1e-5).to(x.dtype)


class Affine(nn.Module):
    def __init__(self, n_in: int, n_out: int, bias: bool = True):
        super().__init__()
        self.w = nn.Parameter(torch.empty(n_out, n_in).normal_(std=n_in ** -0.5))
        self.b = nn.Parameter(torch.zeros(n_out)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.w, self.b)


class CLIPAttention(nn.Module):
    def __init__(self, n_state: int, n_head: int, causal: bool):
        super().__init__()
        self.n_head, self.causal = n_head, causal
        self.ln = CLIPLayerNorm(n_state)
        self.f_q = Affine(n_state, n_state)
        self.f_k = Affine(n_state, n_state, bias=False)
        self.f_v = Affine(n_state, n_state)
        self.f_c = Affine(n_state, n_state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        h = self.ln(x)

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, self.n_head, -1).transpose(1, 2)

        # The reference pads to a block multiple and masks the padding with -1e10; the padded keys get
        # exactly zero weight, so attending over the true length alone is the same computation.
        out = attention(heads(self.f_q(h)), heads(self.f_k(h)), heads(self.f_v(h)), causal=self.causal)
        return self.f_c(out.transpose(1, 2).reshape(batch, length, width))


class CLIPMLP(nn.Module):
    def __init__(self, n_state: int):
        super().__init__()
        self.ln = CLIPLayerNorm(n_state)
        self.f_1 = Affine(n_state, 4 * n_state)
        self.f_2 = Affine(4 * n_state, n_state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.f_2(F.gelu(self.f_1(self.ln(x))))


class CLIPBlock(nn.Module):
    def __init__(self, n_state: int, n_head: int, causal: bool):
        super().__init__()
        self.f_attn = CLIPAttention(n_state, n_head, causal)
        self.f_mlp = CLIPMLP(n_state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.f_attn(x)
        return x + self.f_mlp(x)


class ImageInput(nn.Module):
    def __init__(self, config: CLIPConfig, n_state: int):
        super().__init__()
        self.patch_size = config.patch_size
        n_patches = (config.image_size // config.patch_size) ** 2
        scale = n_state ** -0.5
        self.w_t = nn.Parameter(torch.randn(config.n_timesteps, n_state) * scale)
        self.patch_proj = nn.Parameter(
            torch.randn(n_state, 3, config.patch_size, config.patch_size) * scale
        )
        self.w_pos = nn.Parameter(torch.randn(1 + n_patches, n_state) * scale)
        self.ln = CLIPLayerNorm(n_state)
        self.register_buffer("channel_means", torch.tensor(CLIP_CHANNEL_MEANS), persistent=False)
        self.register_buffer("channel_stds", torch.tensor(CLIP_CHANNEL_STDS), persistent=False)

    def forward(self, image_0_255: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        x = (image_0_255 - self.channel_means[None, :, None, None]) / self.channel_stds[None, :, None, None]
        x = F.conv2d(x, self.patch_proj, stride=self.patch_size).flatten(2).transpose(1, 2)
        time_token = self.w_t[timesteps.long()][:, None]
        return self.ln(torch.cat([time_token, x], dim=1) + self.w_pos[None])


class TextInput(nn.Module):
    def __init__(self, config: CLIPConfig, n_state: int):
        super().__init__()
        self.w_voc = nn.Parameter(torch.randn(config.n_vocab, n_state) * 0.02)
        self.w_pos = nn.Parameter(torch.randn(config.max_text_len, n_state) * 0.01)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.embedding(tokens.long(), self.w_voc) + self.w_pos[None, : tokens.shape[1]]


class CLIPOutput(nn.Module):
    def __init__(self, n_state: int, n_embd: int):
        super().__init__()
        self.ln = CLIPLayerNorm(n_state)
        self.f = Affine(n_state, n_embd, bias=False)

    def forward(self, token: torch.Tensor) -> torch.Tensor:
        return self.f(self.ln(token))


class _Blocks(nn.Module):
    def __init__(self, first: nn.Module, n_state: int, n_head: int, n_blocks: int, n_embd: int, causal: bool):
        super().__init__()
        self.input = first
        for i in range(n_blocks):
            self.add_module(f"block_{i}", CLIPBlock(n_state, n_head, causal))
        self.output = CLIPOutput(n_state, n_embd)
        self.n_blocks = n_blocks

    def body(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(self.n_blocks):
            x = getattr(self, f"block_{i}")(x)
        return x


class CLIPImageEncoder(nn.Module):
    """(image in 0..255, model-scale timesteps) -> raw embedding (B, n_embd)."""

    def __init__(self, config: CLIPConfig):
        super().__init__()
        self.config = config
        n_state = config.n_head_image * config.n_head_state_image
        self.blocks = _Blocks(ImageInput(config, n_state), n_state, config.n_head_image,
                              config.n_xf_blocks_image, config.n_embd, causal=False)

    def forward(self, image_0_255: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        x = self.blocks.body(self.blocks.input(image_0_255, timesteps))
        return self.blocks.output(x[:, 0])


class CLIPTextEncoder(nn.Module):
    """(tokens (B, 77), text_len (B,)) -> raw embedding (B, n_embd), read at the end-of-text token."""

    def __init__(self, config: CLIPConfig):
        super().__init__()
        self.config = config
        n_state = config.n_head_text * config.n_head_state_text
        self.blocks = _Blocks(TextInput(config, n_state), n_state, config.n_head_text,
                              config.n_xf_blocks_text, config.n_embd, causal=True)

    def forward(self, tokens: torch.Tensor, text_len: torch.Tensor) -> torch.Tensor:
        x = self.blocks.body(self.blocks.input(tokens))
        last = x[torch.arange(x.shape[0], device=x.device), text_len.long() - 1]
        return self.blocks.output(last)


def normalize_embedding(z: torch.Tensor) -> torch.Tensor:
    return z / (z.norm(dim=-1, keepdim=True) + 1e-12)
