"""Official-style options of the two embedded demo models (same architecture family as GLIDE).

The demo base model reads 20 text tokens, not GLIDE's 128: its text transformer attends over every slot,
padding included, so with 128 slots a three-word caption is diluted 40-fold and a small model trained
for an hour on a CPU never learns to listen to it. Shapes-world captions fit in 20 tokens.
"""

from __future__ import annotations

DEMO_BASE_INPAINT_OPTIONS = {
    "image_size": 64, "num_channels": 32, "num_res_blocks": 1, "channel_mult": "1,2,2,4",
    "num_heads": 1, "num_head_channels": 32, "num_heads_upsample": -1, "attention_resolutions": "16,8",
    "dropout": 0.0, "text_ctx": 20, "xf_width": 64, "xf_layers": 2, "xf_heads": 2,
    "xf_final_ln": True, "xf_padding": True, "diffusion_steps": 1000, "noise_schedule": "squaredcos_cap_v2",
    "timestep_respacing": "", "use_scale_shift_norm": True, "resblock_updown": True, "use_fp16": False,
    "cache_text_emb": False, "inpaint": True, "super_res": False,
}

DEMO_UPSAMPLE_INPAINT_OPTIONS = {
    "image_size": 256, "num_channels": 32, "num_res_blocks": 1, "channel_mult": "1,1,2,2",
    "num_heads": 1, "num_head_channels": 32, "num_heads_upsample": -1, "attention_resolutions": "32",
    "dropout": 0.0, "text_ctx": 128, "xf_width": 32, "xf_layers": 1, "xf_heads": 1,
    "xf_final_ln": True, "xf_padding": True, "diffusion_steps": 1000, "noise_schedule": "linear",
    "timestep_respacing": "", "use_scale_shift_norm": True, "resblock_updown": True, "use_fp16": False,
    "cache_text_emb": False, "inpaint": True, "super_res": True,
}

DEMO_OPTIONS = {
    "demo-base-inpaint": DEMO_BASE_INPAINT_OPTIONS,
    "demo-upsample-inpaint": DEMO_UPSAMPLE_INPAINT_OPTIONS,
}

# The demo noised CLIP: GLIDE's CLIP config keys at small widths. The text side reads CLIP's own BPE ids (so
# its vocabulary is the tokenizer's 49408, not the 65536 slots of OpenAI's table) and needs little width: the
# shapes world has a few dozen words. logit_scale is replaced by the learned value at export.
DEMO_CLIP_OPTIONS = {
    "logit_scale": 100.0, "beta_schedule": "squaredcos_cap_v2", "n_timesteps": 1000, "image_size": 64,
    "patch_size": 8, "n_vocab": 49408, "max_text_len": 77, "n_embd": 128,
    "n_head_state_text": 32, "n_head_text": 2, "n_xf_blocks_text": 3,
    "n_head_state_image": 32, "n_head_image": 4, "n_xf_blocks_image": 4,
}
