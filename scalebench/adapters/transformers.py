"""`transformers`: any local Hugging Face causal LM over the digits token view, sampled with `generate()`.

The spec gives `args = { path = "<model dir>" }`. The model writes the 8×8 image's 64 grey levels
(17 levels, raster order) after a start token, exactly like `gpt`; `scalebench export-hf gpt` writes
the shipped GPT in this form, with a `scalebench.json` beside config.json naming, for each
S = r², the prompt (the resolution's start token) and the position it starts at. A model without
that file needs `start_token` (or a config `bos_token_id`) and offers S = 64 only.

Sampling is `model.generate()` with the KV cache and greedy selection over scores that an
`InverseCDF` logits processor has made one-hot: the processor draws each token by inverting its
conditional CDF (softmax over the grey-level tokens, temperature 1, no top-k / top-p) at a uniform
drawn up front from the call's `torch.Generator` — the draw `gpt` makes (`samplers/autoregressive.py`).
`do_sample=True` would call `torch.multinomial` on the *global* RNG (the contract forbids touching it,
and `fork_rng` + reseeding would tie samples to the global seed and change the draws); this way the
exported GPT gives the same samples as `gpt` under the same seed, point for point.
S = tokens generated (= r² at resolution r, upsampled to 8×8), K fixed 1; NFE is counted by a hook
on the HF model: `generate` calls it once per token (the prefill call yields the first one).
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from scalebench.adapters import AdapterError, require
from scalebench.adapters.hf_export import TOKEN_VIEW_FILE
from scalebench.data.digits import LEVELS, SIDE
from scalebench.methods.gpt import GPTGenerator
from scalebench.methods.raster_ar import ResolutionARGenerator
from scalebench.methods.samplers import autoregressive as ar
from scalebench.params import Param


class InverseCDF:
    """A `generate()` logits processor: step i's token inverts its CDF over the levels at u[:, i].

    Returns scores that are 0 at the drawn token and −inf elsewhere, so greedy selection takes it.
    """

    def __init__(self, u: torch.Tensor, prompt_len: int, first: int, levels: int) -> None:
        self.u, self.prompt_len, self.first, self.levels = u, prompt_len, first, levels

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        i = input_ids.shape[1] - self.prompt_len
        tok = ar.inverse_cdf(scores[:, self.first:self.first + self.levels], self.u[:, i]) + self.first
        return torch.full_like(scores, float("-inf")).scatter_(1, tok[:, None], 0.0)


def read_token_view(path: Path, config: Any, start_token: int, first_level_token: int) -> dict[str, Any]:
    """The token ↔ image map: `scalebench.json` if present, else S = 64 from the start token."""
    f = path / TOKEN_VIEW_FILE
    if f.is_file():
        view = json.loads(f.read_text())
    else:
        start = start_token if start_token >= 0 else getattr(config, "bos_token_id", None)
        if start is None:
            raise AdapterError(f"transformers: {path} has no {TOKEN_VIEW_FILE} and its config no bos_token_id; "
                               "give args.start_token (the token id that starts an 8×8 image)")
        view = {"levels": LEVELS, "side": SIDE, "first_level_token": 0,
                "prompts": {str(SIDE * SIDE): {"input_ids": [start], "position": 0}}}
    if start_token >= 0:
        view["prompts"] = {str(SIDE * SIDE): {"input_ids": [start_token], "position": 0}}
    if first_level_token >= 0:
        view["first_level_token"] = first_level_token
    if (view.get("levels"), view.get("side")) != (LEVELS, SIDE):
        raise AdapterError(f"transformers: {path}/{TOKEN_VIEW_FILE} describes {view.get('levels')} levels at side "
                           f"{view.get('side')}; the digits token view is {LEVELS} levels at {SIDE}×{SIDE}")
    top = view["first_level_token"] + LEVELS
    if top > config.vocab_size:
        raise AdapterError(f"transformers: grey-level tokens {view['first_level_token']}..{top - 1} exceed the "
                           f"model's vocab_size {config.vocab_size}; set args.first_level_token")
    return view


class TransformersGenerator(ResolutionARGenerator):
    """A local HF causal LM over the digits token view, sampled by `generate()` with a KV cache."""

    card = replace(  # gpt's axes, sampler and likelihood, so the two rows compare point for point
        GPTGenerator.card,
        name="transformers",
        family="autoregressive (any HF causal LM)",
        paper="Wolf et al. 2020 (HF Transformers)",
        notes=("A local causal LM (args.path) writes grey-level tokens after a start token via generate() with "
               "a KV cache; draws by inverse CDF from the call's generator (the same draws as gpt). S < 64 needs "
               "the prompts of a scalebench.json (written by `scalebench export-hf`). Exact bits/dim at S=64."),
    )
    params = (
        Param("path", "path", help="a local causal LM directory (config.json + weights, save_pretrained)"),
        Param("start_token", "int", -1, help="token id that starts an 8×8 image (-1: scalebench.json or bos)"),
        Param("first_level_token", "int", -1, help="token id of grey level 0 (-1: scalebench.json, else 0)"),
    )
    checkpoints = ()

    def __init__(self, device: str = "cpu", path: str = "", start_token: int = -1,
                 first_level_token: int = -1) -> None:
        self.path = Path(path)
        if not (self.path / "config.json").is_file():
            raise AdapterError(f"transformers: {path!r} is not a local model directory (no config.json); "
                               "give the folder written by save_pretrained or `scalebench export-hf` (nothing is downloaded)")
        tf = require("transformers", "hf")
        tf.utils.logging.disable_progress_bar()
        try:
            model = tf.AutoModelForCausalLM.from_pretrained(self.path, local_files_only=True)
        except (OSError, ValueError) as e:
            raise AdapterError(f"transformers: cannot load {path}: {str(e).splitlines()[0]}") from None
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.model.requires_grad_(False)
        self.view = read_token_view(self.path, self.model.config, start_token, first_level_token)
        self.first = int(self.view["first_level_token"])
        self._tf = tf
        self._check_position_ids()

    def _check_position_ids(self) -> None:
        """Prompts that start past position 0 need `generate()` to advance the position ids it is given.

        transformers did not before huggingface/transformers#43734 (2026; issue #36510): the positions
        stayed put and the samples would be silently wrong. Two forward calls of one row tell.
        """
        offset = [int(s) for s, p in self.view["prompts"].items() if int(p.get("position", 0)) and int(s) > 1]
        if not offset:
            return
        s = min(offset)
        seen: list[torch.Tensor | None] = []
        handle = self.model.register_forward_pre_hook(
            lambda _m, _a, kw: seen.append(kw.get("position_ids")), with_kwargs=True)
        try:
            self.decode_tokens(math.isqrt(s), torch.zeros(1, s, device=self.device))
        finally:
            handle.remove()
        start = int(self.view["prompts"][str(s)]["position"]) + len(self.view["prompts"][str(s)]["input_ids"])
        got = [None if p is None else int(p[0, -1]) for p in seen[1:3]]
        if got != [start, start + 1]:
            raise AdapterError(f"transformers {self._tf.__version__}: generate() does not advance custom position_ids "
                               f"(saw {got}, expected {[start, start + 1]}), so S = {sorted(offset)} would be wrong; "
                               "upgrade transformers (pip install -U 'scalebench[hf]') or sweep S = 64 only")

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"lm": self.model}

    def _prompt(self, s: int, n: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Prompt ids (n, L) for S = s and, where it does not start at 0, its position ids."""
        p = self.view["prompts"].get(str(s))
        if p is None:
            raise ValueError(f"transformers: {self.path} offers S = {sorted(map(int, self.view['prompts']))}, "
                             f"not S = {s} (export with `scalebench export-hf` for every S)")
        ids = torch.tensor(p["input_ids"], device=self.device).expand(n, -1)
        pos = int(p.get("position", 0))
        extra = {"position_ids": (torch.arange(ids.shape[1], device=self.device) + pos).expand(n, -1)} if pos else {}
        return ids, extra

    @torch.no_grad()
    def decode_tokens(self, r: int, u: torch.Tensor) -> torch.Tensor:
        """(n, r²) grey levels from noise u: `generate()` with the inverse-CDF processor, KV cache on."""
        s, n = r * r, u.shape[0]
        ids, extra = self._prompt(s, n)
        tf = self._tf
        cfg = tf.GenerationConfig(max_new_tokens=s, min_new_tokens=s, do_sample=False, num_beams=1, use_cache=True,
                                  eos_token_id=None, pad_token_id=self.first)
        proc = tf.LogitsProcessorList([InverseCDF(u, ids.shape[1], self.first, LEVELS)])
        out = self.model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=cfg,
                                  logits_processor=proc, **extra)
        return out[:, ids.shape[1]:] - self.first

    @torch.no_grad()
    def token_bits(self, tokens: torch.Tensor) -> torch.Tensor:
        """Exact bits/dim of (n, 64) level tokens: the HF model's softmax over its whole vocabulary."""
        ids, extra = self._prompt(tokens.shape[1], tokens.shape[0])
        seq = torch.cat([ids, tokens[:, :-1] + self.first], 1)
        if extra:
            extra = {"position_ids": torch.cat([extra["position_ids"], extra["position_ids"][:, -1:]
                                                + torch.arange(1, tokens.shape[1], device=self.device)], 1)}
        logits = self.model(seq, **extra).logits[:, ids.shape[1] - 1:]
        return ar.bits_from_logits(logits, tokens + self.first)
