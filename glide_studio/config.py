"""Typed, frozen model configurations, presets for the official checkpoints, and the bridge to
OpenAI's option dicts (the ``options`` of each manifest, as ``create_model_and_diffusion`` takes them)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Any

GPT2_VOCAB_SIZE = 50257

_DEFAULT_CHANNEL_MULT = {256: (1, 1, 2, 2, 4, 4), 128: (1, 1, 2, 3, 4), 64: (1, 2, 3, 4)}

# The reference's get_named_beta_schedule knows only these two.
NOISE_SCHEDULES = ("squaredcos_cap_v2", "linear")
# What the reference's space_timesteps parses: "", "fast27", "ddimN", or comma-separated section counts.
_RESPACING = re.compile(r"fast27|ddim\d+|\d+(,\d+)*")

# Options of OpenAI's other diffusion code (guided/improved diffusion) that a GLIDE options dict never has.
_NOT_GLIDE_OPTIONS = {
    "learn_sigma": "GLIDE's UNets always output eps and a learned variance (6 channels), which the samplers use",
    "class_cond": "GLIDE conditions on text, never on class labels",
    "num_classes": "GLIDE conditions on text, never on class labels",
    "conv_resample": "GLIDE's create_model always resamples with convolutions",
    "use_checkpoint": "gradient checkpointing is a training setting, not part of a GLIDE model",
    "use_new_attention_order": "GLIDE's attention always splits q, k and v per head (the legacy order)",
    "predict_xstart": "GLIDE's UNets predict eps",
    "rescale_timesteps": "GLIDE's UNets take the original integer timesteps",
}


class ConfigError(ValueError):
    """An options dict or config that does not describe a buildable model."""


def _parse_int_list(value: Any, what: str) -> tuple[int, ...]:
    if isinstance(value, str):
        parts = [p for p in value.split(",") if p.strip()]
        try:
            return tuple(int(p) for p in parts)
        except ValueError as exc:
            raise ConfigError(f"{what}: expected comma-separated integers, got {value!r}") from exc
    if isinstance(value, (list, tuple)):
        return tuple(int(v) for v in value)
    raise ConfigError(f"{what}: expected a string or a list of integers, got {value!r}")


def _reject_unknown_options(config_class: type, options: dict[str, Any], family: str,
                            hints: dict[str, str] | None = None) -> None:
    # An unknown key would otherwise be silently ignored and build a different model than asked for.
    unknown = sorted(set(options) - {f.name for f in fields(config_class)})
    if unknown:
        why = [f"{name}: {hints[name]}" for name in unknown if hints and name in hints]
        raise ConfigError(f"unknown {family} option(s): {', '.join(unknown)}" + "".join(f"\n  {w}" for w in why))


@dataclass(frozen=True)
class UNetConfig:
    """One GLIDE UNet: text->image, inpaint, super-res or super-res inpaint (the two flags)."""

    image_size: int = 64
    num_channels: int = 192
    num_res_blocks: int = 3
    channel_mult: tuple[int, ...] = ()
    num_heads: int = 1
    num_head_channels: int = 64
    num_heads_upsample: int = -1
    attention_resolutions: tuple[int, ...] = (32, 16, 8)
    dropout: float = 0.1
    text_ctx: int = 128
    xf_width: int = 512
    xf_layers: int = 16
    xf_heads: int = 8
    xf_final_ln: bool = True
    xf_padding: bool = True
    diffusion_steps: int = 1000
    noise_schedule: str = "squaredcos_cap_v2"
    # The notebooks' step count; each request here picks its own respacing.
    timestep_respacing: str = ""
    use_scale_shift_norm: bool = True
    resblock_updown: bool = True
    # Neither changes the network: precision is chosen at load time (models.precision), and the pipelines
    # compute the text embedding once per stage, which is what the reference's cache is for.
    use_fp16: bool = False
    cache_text_emb: bool = False
    inpaint: bool = False
    super_res: bool = False
    n_vocab: int = GPT2_VOCAB_SIZE

    def __post_init__(self) -> None:
        if self.num_channels % 32 != 0:
            raise ConfigError(
                f"num_channels must be a multiple of 32 (GroupNorm uses 32 groups), got {self.num_channels}"
            )
        if not self.channel_mult and self.image_size not in _DEFAULT_CHANNEL_MULT:
            raise ConfigError(f"no default channel_mult for image_size {self.image_size}; give channel_mult")
        if self.xf_width and self.xf_width % self.xf_heads != 0:
            raise ConfigError(f"xf_width {self.xf_width} is not divisible by xf_heads {self.xf_heads}")
        for res in self.attention_resolutions:
            if res <= 0 or self.image_size % res != 0:
                raise ConfigError(f"attention resolution {res} does not divide image_size {self.image_size}")
        if self.noise_schedule not in NOISE_SCHEDULES:
            raise ConfigError(f"noise_schedule {self.noise_schedule!r} is not one of {', '.join(NOISE_SCHEDULES)}")
        if self.diffusion_steps != 1000:
            raise ConfigError(
                f"diffusion_steps {self.diffusion_steps} is not supported: the samplers and trainer here run "
                "GLIDE's 1000-step chain, so such a model would be fed the wrong noise levels"
            )
        if self.timestep_respacing and not _RESPACING.fullmatch(str(self.timestep_respacing)):
            raise ConfigError(
                f"timestep_respacing {self.timestep_respacing!r}: expected '', 'fast27', 'ddimN' or "
                "comma-separated section counts such as '100' or '10,10,3,2,2'"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.num_res_blocks < 0 or any(m <= 0 for m in self.resolved_channel_mult):
            raise ConfigError("num_res_blocks must be >= 0 and every channel_mult entry > 0")
        self._check_attention_heads()

    def _check_attention_heads(self) -> None:
        """Each attention layer must split its channels evenly into heads (the reference asserts it)."""
        mults = self.resolved_channel_mult
        rates = set(self.attention_downsample_rates)
        heads_up = self.num_heads if self.num_heads_upsample == -1 else self.num_heads_upsample
        for level, mult in enumerate(mults):
            width = mult * self.num_channels
            # Input and output blocks attend at the listed rates; the middle block always, at the last level.
            used = [("num_heads", self.num_heads), ("num_heads_upsample", heads_up)] if 2**level in rates else []
            if level == len(mults) - 1:
                used.append(("num_heads", self.num_heads))
            if not used:
                continue
            if self.num_head_channels != -1:
                if self.num_head_channels <= 0 or width % self.num_head_channels:
                    raise ConfigError(
                        f"num_head_channels {self.num_head_channels} does not divide the {width} channels "
                        f"of an attention layer (use -1 to set num_heads instead)"
                    )
                continue
            for name, heads in used:
                if heads <= 0 or width % heads:
                    raise ConfigError(f"{name} {heads} does not divide the {width} channels of an attention layer")

    @property
    def resolved_channel_mult(self) -> tuple[int, ...]:
        return self.channel_mult or _DEFAULT_CHANNEL_MULT[self.image_size]

    @property
    def attention_downsample_rates(self) -> tuple[int, ...]:
        return tuple(self.image_size // res for res in self.attention_resolutions)

    @property
    def in_channels(self) -> int:
        # x_t, then [inpaint image, inpaint mask], then the upsampled low-res image.
        return 3 + (4 if self.inpaint else 0) + (3 if self.super_res else 0)

    @property
    def variant(self) -> str:
        return {
            (False, False): "text2im",
            (True, False): "inpaint",
            (False, True): "super_res",
            (True, True): "super_res_inpaint",
        }[(self.inpaint, self.super_res)]

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> UNetConfig:
        """Read an official GLIDE options dict (unknown keys are an error: they would be silently ignored)."""
        _reject_unknown_options(cls, options, "GLIDE", _NOT_GLIDE_OPTIONS)
        values = dict(options)
        if "channel_mult" in values:
            values["channel_mult"] = _parse_int_list(values["channel_mult"], "channel_mult")
        if "attention_resolutions" in values:
            values["attention_resolutions"] = _parse_int_list(
                values["attention_resolutions"], "attention_resolutions"
            )
        for name in ("xf_final_ln", "xf_padding", "use_scale_shift_norm", "resblock_updown", "use_fp16",
                     "cache_text_emb", "inpaint", "super_res"):
            if name in values:
                values[name] = bool(values[name])
        return cls(**values)

    def to_options(self) -> dict[str, Any]:
        """The official-style options dict (lists as the reference's comma strings)."""
        options = asdict(self)
        options["channel_mult"] = ",".join(str(m) for m in self.channel_mult)
        options["attention_resolutions"] = ",".join(str(r) for r in self.attention_resolutions)
        return options


_GLIDE_BASE = dict(
    image_size=64, num_channels=192, num_res_blocks=3, dropout=0.1, xf_width=512, xf_layers=16, xf_heads=8,
    noise_schedule="squaredcos_cap_v2", timestep_respacing="100",
)
_GLIDE_UPSAMPLE = dict(
    image_size=256, num_channels=192, num_res_blocks=2, dropout=0.1, xf_width=512, xf_layers=16, xf_heads=8,
    noise_schedule="linear", timestep_respacing="fast27", super_res=True,
)

UNET_PRESETS: dict[str, UNetConfig] = {
    "base": UNetConfig(**_GLIDE_BASE),
    "base-inpaint": UNetConfig(**_GLIDE_BASE, inpaint=True),
    "upsample": UNetConfig(**_GLIDE_UPSAMPLE),
    "upsample-inpaint": UNetConfig(**{**_GLIDE_UPSAMPLE, "inpaint": True}),
}


@dataclass(frozen=True)
class CLIPConfig:
    """GLIDE's noised CLIP (the keys of its config.yaml)."""

    logit_scale: float = 100.0
    beta_schedule: str = "squaredcos_cap_v2"
    n_timesteps: int = 1000
    image_size: int = 64
    patch_size: int = 4
    n_vocab: int = 65536
    max_text_len: int = 77
    n_embd: int = 512
    n_head_state_text: int = 64
    n_head_text: int = 8
    n_xf_blocks_text: int = 12
    n_head_state_image: int = 64
    n_head_image: int = 12
    n_xf_blocks_image: int = 12

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size != 0:
            raise ConfigError(f"image_size {self.image_size} is not divisible by patch_size {self.patch_size}")

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> CLIPConfig:
        _reject_unknown_options(cls, options, "CLIP")
        return cls(**options)

    def to_options(self) -> dict[str, Any]:
        return asdict(self)


CLIP_PRESET = CLIPConfig()
