"""The ADM UNet with GLIDE's text conditioning, in its four variants (chosen by the config's flags).

Parameter names, shapes and registration order follow OpenAI's checkpoints exactly, so their state dicts
load unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import UNetConfig
from .layers import GroupNorm32, LayerNorm32, attention, timestep_embedding, zero_init
from .text_transformer import TextTransformer


class ResBlock(nn.Module):
    def __init__(self, channels: int, emb_channels: int, out_channels: int, dropout: float,
                 use_scale_shift_norm: bool, up: bool = False, down: bool = False):
        super().__init__()
        self.use_scale_shift_norm = use_scale_shift_norm
        self.up, self.down = up, down
        self.in_layers = nn.Sequential(
            GroupNorm32(channels, silu=True), nn.Identity(), nn.Conv2d(channels, out_channels, 3, padding=1)
        )
        self.emb_layers = nn.Sequential(
            nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels if use_scale_shift_norm else out_channels)
        )
        self.out_layers = nn.Sequential(
            GroupNorm32(out_channels, silu=not use_scale_shift_norm),
            nn.SiLU() if use_scale_shift_norm else nn.Identity(),
            nn.Dropout(p=dropout),
            zero_init(nn.Conv2d(out_channels, out_channels, 3, padding=1)),
        )
        self.skip_connection = (
            nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)
        )

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        if self.up:
            return F.interpolate(x, scale_factor=2, mode="nearest")
        if self.down:
            return F.avg_pool2d(x, kernel_size=2, stride=2)
        return x

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if self.up or self.down:
            h = self.in_layers[:-1](x)
            h = self.in_layers[-1](self._resample(h))
            x = self._resample(x)
        else:
            h = self.in_layers(x)
        emb_out = self.emb_layers(emb).to(h.dtype)[..., None, None]
        if self.use_scale_shift_norm:
            scale, shift = emb_out.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + emb_out)
        return self.skip_connection(x) + h


class Downsample(nn.Module):
    """The plain (resblock_updown=False) downsampler: a stride-2 3x3 conv named ``op``, as in the reference.

    GLIDE's create_model never exposes conv_resample, so the avg-pool form of the reference never occurs.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """The plain upsampler: nearest x2, then a 3x3 conv named ``conv``."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


def _embedding(count: int, width: int) -> nn.Embedding:
    if torch.empty(0).is_meta:
        # Built on meta to receive a file's tensors: skip normal_, which has no native meta kernel and would
        # import torch._dynamo (1.3 s and ~300k objects for the garbage collector) to initialise nothing.
        return nn.Embedding(count, width, _weight=torch.empty(count, width))
    return nn.Embedding(count, width)


class AttentionBlock(nn.Module):
    """Spatial self-attention whose keys and values are prefixed with the text tokens."""

    def __init__(self, channels: int, num_heads: int, encoder_channels: int | None):
        super().__init__()
        self.num_heads = num_heads
        self.norm = GroupNorm32(channels)
        self.qkv = nn.Conv1d(channels, channels * 3, 1)
        if encoder_channels is not None:
            self.encoder_kv = nn.Conv1d(encoder_channels, channels * 2, 1)
        self.proj_out = zero_init(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor, encoder_out: torch.Tensor | None) -> torch.Tensor:
        batch, channels, *spatial = x.shape
        heads = self.num_heads
        qkv = self.qkv(self.norm(x).reshape(batch, channels, -1))
        # (B*heads, 3*d, L) split per head, then to (B*heads, L, d) for the kernel.
        q, k, v = qkv.reshape(batch * heads, -1, qkv.shape[-1]).chunk(3, dim=1)
        if encoder_out is not None:
            ek, ev = self.encoder_kv(encoder_out).reshape(batch * heads, -1, encoder_out.shape[-1]).chunk(2, dim=1)
            k = torch.cat([ek.to(k.dtype), k], dim=-1)
            v = torch.cat([ev.to(v.dtype), v], dim=-1)
        h = attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)
        h = self.proj_out(h.reshape(batch, channels, -1))
        return x + h.reshape(batch, channels, *spatial)


class EmbedSequential(nn.Sequential):
    """Passes the time embedding to ResBlocks and the text tokens to attention blocks."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor, encoder_out: torch.Tensor | None) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, AttentionBlock):
                x = layer(x, encoder_out)
            else:
                x = layer(x)
        return x


def upscale_low_res(low_res: torch.Tensor, size) -> torch.Tensor:
    """A super-resolution UNet's low-resolution input at its output's size, as the network itself upscales it."""
    return F.interpolate(low_res, size, mode="bilinear", align_corners=False)


@dataclass
class ReusedFeatures:
    """Feature reuse's split of the UNet at its `shallow_blocks`-th skip connection (DeepCache's branch).

    Passed to `forward` with `deep` None, the network runs in full, the same operations in the same order as
    without it (so the same output, bit for bit), and leaves in `deep` what the deeper part of the body hands
    the last `shallow_blocks` output blocks. Passed with such `deep` features (from an earlier call at a nearby
    timestep), only the shallow part runs: the first `shallow_blocks` input blocks, for their skips, and the last
    `shallow_blocks` output blocks on `deep`; the deep part, most of the arithmetic, is skipped.
    """

    shallow_blocks: int
    deep: torch.Tensor | None = None


class GlideUNet(nn.Module):
    """Text2ImUNet / InpaintText2ImUNet / SuperResText2ImUNet / SuperResInpaintText2ImUnet."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        c = config
        model_channels = c.num_channels
        mults = c.resolved_channel_mult
        # The stem (and so the final norm and conv) is as wide as the first level, not num_channels.
        ch = mults[0] * model_channels
        emb_channels = model_channels * 4
        attention_ds = set(c.attention_downsample_rates)
        heads_for = lambda channels, heads: heads if c.num_head_channels == -1 else channels // c.num_head_channels  # noqa: E731
        heads_up = c.num_heads if c.num_heads_upsample == -1 else c.num_heads_upsample
        encoder_channels = c.xf_width if c.xf_width else None

        def resblock(cin: int, cout: int, **kw) -> ResBlock:
            return ResBlock(cin, emb_channels, cout, c.dropout, c.use_scale_shift_norm, **kw)

        self.time_embed = nn.Sequential(
            nn.Linear(model_channels, emb_channels), nn.SiLU(), nn.Linear(emb_channels, emb_channels)
        )
        self.input_blocks = nn.ModuleList([EmbedSequential(nn.Conv2d(c.in_channels, ch, 3, padding=1))])
        skip_channels = [ch]
        ds = 1
        for level, mult in enumerate(mults):
            for _ in range(c.num_res_blocks):
                layers: list[nn.Module] = [resblock(ch, mult * model_channels)]
                ch = mult * model_channels
                if ds in attention_ds:
                    layers.append(AttentionBlock(ch, heads_for(ch, c.num_heads), encoder_channels))
                self.input_blocks.append(EmbedSequential(*layers))
                skip_channels.append(ch)
            if level != len(mults) - 1:
                down = resblock(ch, ch, down=True) if c.resblock_updown else Downsample(ch)
                self.input_blocks.append(EmbedSequential(down))
                skip_channels.append(ch)
                ds *= 2
        self.middle_block = EmbedSequential(
            resblock(ch, ch), AttentionBlock(ch, heads_for(ch, c.num_heads), encoder_channels), resblock(ch, ch)
        )
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(mults))):
            for i in range(c.num_res_blocks + 1):
                layers = [resblock(ch + skip_channels.pop(), model_channels * mult)]
                ch = model_channels * mult
                if ds in attention_ds:
                    layers.append(AttentionBlock(ch, heads_for(ch, heads_up), encoder_channels))
                if level and i == c.num_res_blocks:
                    layers.append(resblock(ch, ch, up=True) if c.resblock_updown else Upsample(ch))
                    ds //= 2
                self.output_blocks.append(EmbedSequential(*layers))
        self.out = nn.Sequential(
            GroupNorm32(ch, silu=True), nn.Identity(), zero_init(nn.Conv2d(ch, 6, 3, padding=1))
        )
        if c.xf_width:
            self.transformer = TextTransformer(c.xf_width, c.xf_layers, c.xf_heads)
            self.final_ln = LayerNorm32(c.xf_width, eps=1e-5) if c.xf_final_ln else None
            self.token_embedding = _embedding(c.n_vocab, c.xf_width)
            self.positional_embedding = nn.Parameter(torch.zeros(c.text_ctx, c.xf_width))
            self.transformer_proj = nn.Linear(c.xf_width, emb_channels)
            if c.xf_padding:
                self.padding_embedding = nn.Parameter(torch.zeros(c.text_ctx, c.xf_width))

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the UNet body runs in (float16 after convert_to_fp16)."""
        return self.input_blocks[0][0].weight.dtype

    def get_text_emb(self, tokens: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """xf_proj (B, 4C) from the last token slot, and xf_out (B, width, ctx) for cross-attention."""
        c = self.config
        if not c.xf_width:
            return {}  # an unconditional model: forward ignores text
        if tokens.shape[-1] != c.text_ctx:
            raise ValueError(f"tokens must have {c.text_ctx} positions, got {tokens.shape[-1]}")
        xf_in = self.token_embedding(tokens.long()) + self.positional_embedding[None]
        if c.xf_padding:
            xf_in = torch.where(mask.bool()[..., None], xf_in, self.padding_embedding[None])
        xf_out = self.transformer(xf_in.to(self.transformer_dtype))
        if self.final_ln is not None:
            xf_out = self.final_ln(xf_out)
        xf_proj = self.transformer_proj(xf_out[:, -1])
        return {"xf_proj": xf_proj, "xf_out": xf_out.permute(0, 2, 1)}

    @property
    def transformer_dtype(self) -> torch.dtype:
        return self.transformer.resblocks[0].attn.c_qkv.weight.dtype if self.config.xf_layers else self.dtype

    def assemble_input(self, x, inpaint_image=None, inpaint_mask=None, low_res=None) -> torch.Tensor:
        parts = [x]
        if self.config.inpaint:
            if inpaint_image is None:
                inpaint_image = torch.zeros_like(x)
            if inpaint_mask is None:
                inpaint_mask = torch.zeros_like(x[:, :1])
            parts += [inpaint_image * inpaint_mask, inpaint_mask]
        if self.config.super_res:
            if low_res is None:
                raise ValueError("a super-resolution model needs low_res")
            parts.append(upscale_low_res(low_res, x.shape[-2:]))
        return torch.cat(parts, dim=1)

    def _inputs(self, x, timesteps, tokens=None, mask=None, inpaint_image=None, inpaint_mask=None, low_res=None,
                text_emb=None):
        """The body's input h, the time (+ text) embedding and the text tokens for cross-attention."""
        h = self.assemble_input(x, inpaint_image, inpaint_mask, low_res)
        emb = self.time_embed(timestep_embedding(timesteps, self.config.num_channels))
        xf_out = None
        if self.config.xf_width:
            if text_emb is None:
                if tokens is None or mask is None:
                    raise ValueError("pass tokens and mask, or a precomputed text_emb")
                text_emb = self.get_text_emb(tokens, mask)
            emb = emb + text_emb["xf_proj"].to(emb)
            xf_out = text_emb["xf_out"]
        h = h.to(self.dtype)
        if xf_out is not None:
            xf_out = xf_out.to(self.dtype)
        return h, emb, xf_out

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, tokens: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, inpaint_image: torch.Tensor | None = None,
                inpaint_mask: torch.Tensor | None = None, low_res: torch.Tensor | None = None,
                text_emb: dict[str, torch.Tensor] | None = None, reuse: ReusedFeatures | None = None) -> torch.Tensor:
        """eps and the variance values (B, 6, H, W). With `reuse` (feature reuse across steps) the body is split
        at that skip connection: see `ReusedFeatures`."""
        h, emb, xf_out = self._inputs(x, timesteps, tokens, mask, inpaint_image, inpaint_mask, low_res, text_emb)
        if reuse is not None:
            return self.out(self._split_body(h, emb, xf_out, reuse).to(x.dtype))
        skips = []
        for block in self.input_blocks:
            h = block(h, emb, xf_out)
            skips.append(h)
        h = self.middle_block(h, emb, xf_out)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb, xf_out)
        return self.out(h.to(x.dtype))

    def _split_body(self, h, emb, xf_out, reuse: ReusedFeatures) -> torch.Tensor:
        count, shallow = len(self.input_blocks), reuse.shallow_blocks
        if not 1 <= shallow < count:
            raise ValueError(f"shallow_blocks must be from 1 to {count - 1}, got {shallow}")
        skips = []
        for block in self.input_blocks if reuse.deep is None else self.input_blocks[:shallow]:
            h = block(h, emb, xf_out)
            skips.append(h)
        if reuse.deep is None:
            h = self.middle_block(h, emb, xf_out)
            for block in self.output_blocks[:count - shallow]:
                h = block(torch.cat([h, skips.pop()], dim=1), emb, xf_out)
            reuse.deep = h
        h = reuse.deep
        for block in self.output_blocks[count - shallow:]:
            h = block(torch.cat([h, skips.pop()], dim=1), emb, xf_out)
        return h
