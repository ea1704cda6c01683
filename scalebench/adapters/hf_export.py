"""`scalebench export-hf gpt OUT_DIR`: the shipped GPT as a standard `GPT2LMHeadModel` directory.

The native net (`methods/nets/transformer.py`) is GPT-2's architecture — learned absolute
positions, pre-LN blocks with biases, exact (erf) GELU, fused qkv, attention scaled by 1/√d_head,
a final LayerNorm — with three differences a weight mapping must absorb, each exactly:

1. **The resolution id is a prefix token with no position embedding.** It becomes one extra
   vocabulary id per resolution (ids LEVELS..LEVELS+3) whose position row is zero.
2. **Each resolution has its own block of the position table.** The HF table is laid out
   sequence by sequence: 8×8 first (start token at position 0, pixels at 1..64), so the 8×8
   model is a plain GPT-2 from position 0 that any HF tool scores correctly; the coarser
   resolutions follow (their prompts start at a later position, written to `scalebench.json`).
3. **The logits head is untied and has a bias**; GPT-2's `lm_head` has no bias. The bias is
   folded into the final LayerNorm's bias: logits = W(n∘g + b) + c = W(n∘g + b + δ) with Wδ = c,
   which has an exact solution because W (LEVELS × d_model) has full row rank (checked). The start
   tokens' head rows use LayerNorm's constant direction u = 1/g (u·(n∘g) = Σn = 0 for every input),
   so their logit is −10⁴ whatever the input: the softmax over the whole vocabulary equals the
   native softmax over the grey levels. `tie_word_embeddings=False` keeps the head separate.

No other standard HF class fits better: GPT-J/CodeGen/Phi have a head bias but rotary positions
and parallel blocks, GPT-Neo has no q/k/v biases and no attention scaling, OPT offsets its
positions by the padding mask, ImageGPT's LayerNorm has no mean or bias. Dropout is written as 0:
this is an inference export. Radford et al. 2019 (GPT-2); HF `GPT2LMHeadModel`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from scalebench.errors import UsageError

TOKEN_VIEW_FILE = "scalebench.json"
"""Written beside config.json: how token ids map to images and which prompt starts each S."""
TOKEN_VIEW_FORMAT = "scalebench-token-image/1"
SUPPRESSED_LOGIT = -1.0e4  # the start tokens' logit: exp(-1e4) is 0 in float32
EXPORTABLE = ("gpt",)


class ExportError(UsageError):
    """A model that cannot be written as the requested HF class (one line: why)."""


def position_layout(resolutions: Sequence[int], native_offset: dict[int, int]) -> dict[int, tuple[int, list[int]]]:
    """r → (HF position of the start token, native position rows of its r² pixels), largest r first."""
    out: dict[int, tuple[int, list[int]]] = {}
    nxt = 0
    for r in sorted(resolutions, reverse=True):
        out[r] = (nxt, list(range(native_offset[r], native_offset[r] + r * r)))
        nxt += 1 + r * r
    return out


def _fold_head_bias(w: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """δ with W δ = c (float64 min-norm solution); refuses a head without full row rank."""
    w64, c64 = w.double(), c.double()
    if torch.linalg.matrix_rank(w64) < w64.shape[0]:
        raise ExportError(f"the logits head ({tuple(w.shape)}) has rank < {w.shape[0]}: its bias cannot be "
                          "folded into GPT-2's final LayerNorm exactly")
    delta = torch.linalg.pinv(w64) @ c64
    if (w64 @ delta - c64).abs().max() > 1e-9:
        raise ExportError("folding the head bias into ln_f.bias left a residual > 1e-9")
    return delta


def gpt2_state(model: Any, levels: int, resolutions: Sequence[int], native_offset: dict[int, int]
               ) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[int, tuple[int, list[int]]]]:
    """(GPT2LMHeadModel state dict, GPT2Config kwargs, position layout) of a `CausalTransformer`."""
    cfg = model.cfg
    sd = {k: v.detach().to("cpu", torch.float64) for k, v in model.state_dict().items()}
    d, n_cond = cfg.d_model, cfg.n_cond
    if n_cond != len(resolutions) or (cfg.out_size or cfg.vocab_size) != levels or cfg.vocab_size != levels:
        raise ExportError(f"expected a {levels}-token net with {len(resolutions)} resolution ids; got {cfg}")
    layout = position_layout(resolutions, native_offset)
    n_pos = sum(1 + r * r for r in resolutions)
    wpe = torch.zeros(n_pos, d, dtype=torch.float64)
    for r, (start, rows) in layout.items():
        wpe[start + 1:start + 1 + r * r] = sd["pos_emb.weight"][rows]
    out: dict[str, torch.Tensor] = {
        "transformer.wte.weight": torch.cat([sd["tok_emb.weight"], sd["cond_emb.weight"]]),
        "transformer.wpe.weight": wpe,
    }
    for i in range(cfg.n_layers):
        p, q = f"blocks.{i}.", f"transformer.h.{i}."
        # HF Conv1D stores (in, out): the transpose of nn.Linear's weight
        pairs = {"ln_1": ("ln1", False), "ln_2": ("ln2", False), "attn.c_attn": ("attn.qkv", True),
                 "attn.c_proj": ("attn.proj", True), "mlp.c_fc": ("mlp.0", True), "mlp.c_proj": ("mlp.2", True)}
        for hf, (nat, linear) in pairs.items():
            out[f"{q}{hf}.weight"] = sd[f"{p}{nat}.weight"].t() if linear else sd[f"{p}{nat}.weight"]
            out[f"{q}{hf}.bias"] = sd[f"{p}{nat}.bias"]
    g, b = sd["ln_f.weight"], sd["ln_f.bias"]
    w, c = sd["head.weight"], sd["head.bias"]
    b_new = b + _fold_head_bias(w, c)
    if (g.abs() < 1e-6).any():
        raise ExportError("ln_f has a zero gain: the start tokens' logits cannot be suppressed exactly")
    u = 1.0 / g
    ub = float(u @ b_new)
    if abs(ub) < 1e-6:
        raise ExportError("ln_f's bias is orthogonal to 1/gain: the start tokens' logits cannot be suppressed")
    cond_rows = (SUPPRESSED_LOGIT / ub) * u.expand(n_cond, d)
    out["transformer.ln_f.weight"], out["transformer.ln_f.bias"] = g, b_new
    out["lm_head.weight"] = torch.cat([w, cond_rows])
    out = {k: v.float().contiguous() for k, v in out.items()}
    config = dict(vocab_size=levels + n_cond, n_positions=n_pos, n_embd=d, n_layer=cfg.n_layers,
                  n_head=cfg.n_heads, n_inner=cfg.mlp_ratio * d, activation_function="gelu",
                  resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5,
                  scale_attn_weights=True, scale_attn_by_inverse_layer_idx=False, reorder_and_upcast_attn=False,
                  tie_word_embeddings=False, bos_token_id=levels + resolutions.index(max(resolutions)), eos_token_id=None)
    return out, config, layout


def token_view(levels: int, side: int, resolutions: Sequence[int], layout: dict[int, tuple[int, list[int]]],
               source: dict[str, Any]) -> dict[str, Any]:
    """The `scalebench.json` the `transformers` adapter reads: S = r² → prompt ids and start position."""
    return {
        "format": TOKEN_VIEW_FORMAT, "dataset": "digits", "levels": levels, "side": side, "channels": 1,
        "first_level_token": 0,
        "prompts": {str(r * r): {"input_ids": [levels + resolutions.index(r)], "position": layout[r][0]}
                    for r in sorted(resolutions)},
        "source": source,
    }


def export_gpt(out_dir: Path, model: Any = None) -> Path:
    """Write the shipped GPT (or `model`, a gpt-shaped `CausalTransformer`) to `out_dir`; return it."""
    from scalebench.adapters import require

    transformers = require("transformers", "hf")
    transformers.utils.logging.disable_progress_bar()
    from scalebench.data.digits import LEVELS, SIDE
    from scalebench.methods import gpt
    from scalebench.zoo import checkpoint_hash

    source: dict[str, Any] = {"generator": "gpt"}
    if model is None:
        model = gpt.GPTGenerator("cpu").model
        source["checkpoint_sha256"] = checkpoint_hash("gpt")
    state, config, layout = gpt2_state(model, LEVELS, gpt.RESOLUTIONS, gpt.POS_OFFSET)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(**config))
    missing, unexpected = hf.load_state_dict(state, strict=False)
    if missing or unexpected:  # buffers only (e.g. an attention-mask buffer) may differ
        raise ExportError(f"weight mapping does not cover GPT2LMHeadModel: missing {missing}, unexpected {unexpected}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(out_dir, safe_serialization=True)
    view = token_view(LEVELS, SIDE, gpt.RESOLUTIONS, layout, source)
    (out_dir / TOKEN_VIEW_FILE).write_text(json.dumps(view, indent=2) + "\n")
    return out_dir


def export(name: str, out_dir: Path) -> Path:
    """`scalebench export-hf NAME OUT_DIR`; only the families listed in EXPORTABLE."""
    from scalebench.generators import GENERATORS

    key = GENERATORS.canonical(name)
    if key not in EXPORTABLE:
        raise UsageError(f"export-hf {name!r}: only {list(EXPORTABLE)} can be exported as a transformers model")
    return export_gpt(out_dir)
