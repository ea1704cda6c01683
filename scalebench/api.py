"""Public contracts of scalebench: budgets, axes, method cards, metrics, the Generator protocol.

Only light imports here (no torch at import time) so that `scalebench list` and the
registry stay fast; torch types appear in annotations only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    import torch

SeedCategory = Literal["neither", "sequence", "refinement", "both-outer-S", "both-outer-K"]
"""The five rows of the seed document's table (which axes the seed says a family scales)."""

SEED_CATEGORIES: dict[str, tuple[bool, bool, str | None]] = {
    # category: (scales with S, scales with K, outer loop)
    "neither": (False, False, None),
    "sequence": (True, False, None),
    "refinement": (False, True, None),
    "both-outer-S": (True, True, "S"),
    "both-outer-K": (True, True, "K"),
}

LikelihoodKind = Literal["none", "exact", "bound"]


@dataclass(frozen=True)
class Budget:
    """Inference compute along the two axes: S sequential commit steps, K refinement passes."""

    S: int = 1
    K: int = 1

    def __post_init__(self) -> None:
        for name in ("S", "K"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"Budget.{name}={v!r} is invalid; use a positive integer")


@dataclass(frozen=True)
class Axis:
    """One inference axis of a method: what it means, which values are valid, the default.

    `values` lists the valid values when they are a small set (e.g. GPT's S in {1,4,16,64});
    otherwise `low`/`high` bound an integer range. A fixed axis has a single valid value and
    is shown as "—" in the scalability table.
    """

    meaning: str
    default: int = 1
    values: tuple[int, ...] | None = None
    low: int | None = None
    high: int | None = None

    @classmethod
    def fixed(cls, value: int = 1, meaning: str = "fixed") -> Axis:
        return cls(meaning=meaning, default=value, values=(value,))

    @property
    def is_fixed(self) -> bool:
        return self.values is not None and len(self.values) == 1

    def valid(self, v: int) -> bool:
        if self.values is not None:
            return v in self.values
        lo = 1 if self.low is None else self.low
        return v >= lo and (self.high is None or v <= self.high)

    def describe(self) -> str:
        if self.is_fixed:
            return f"— (fixed {self.default})"
        if self.values is not None:
            return "{" + ",".join(map(str, self.values)) + "}"
        return f"{self.low or 1}..{self.high if self.high is not None else '∞'}"


@dataclass(frozen=True)
class SamplerCard:
    """What one sampler changes about its generator's card; None keeps the generator's value.

    Jacobi iteration on the GPT's weights is a refinement method with a K axis, while the
    GPT's ancestral sampler is a sequence method: one checkpoint, two rows of the table.
    """

    category: SeedCategory | None = None
    S: Axis | None = None
    K: Axis | None = None
    outer: Literal["S", "K"] | None = None
    likelihood: LikelihoodKind | None = None
    paper: str = ""
    notes: str = ""


@dataclass(frozen=True)
class MethodCard:
    """What a generator is and how its inference compute can be scaled.

    The card is the source of truth for a method's axis mapping (tests/test_readme_zoo.py checks
    the README's zoo table against it). A sampler listed in `sampler_cards` overrides the axes,
    category, outer loop or likelihood for its own rows (`for_sampler`).
    """

    name: str
    family: str
    category: SeedCategory
    S: Axis
    K: Axis
    dataset: str = "digits"
    outer: Literal["S", "K"] | None = None
    likelihood: LikelihoodKind = "none"
    paper: str = ""
    samplers: tuple[str, ...] = ("default",)
    notes: str = ""
    sampler_cards: Mapping[str, SamplerCard] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.sampler_cards) - set(self.samplers))
        if unknown:
            raise ValueError(f"{self.name}: sampler_cards names {unknown}, which are not in samplers {list(self.samplers)}")

    def for_sampler(self, sampler: str | None) -> MethodCard:
        """The card of this generator's rows drawn with `sampler` (None = the default sampler)."""
        s = self.check_sampler(sampler)
        o = self.sampler_cards.get(s)
        if o is None:
            return self
        return replace(
            self, category=o.category or self.category, S=o.S or self.S, K=o.K or self.K,
            outer=o.outer if o.outer is not None else self.outer, likelihood=o.likelihood or self.likelihood,
            paper=o.paper or self.paper, notes=o.notes or self.notes, sampler_cards={},
        )

    def check_budget(self, budget: Budget, sampler: str | None = None) -> None:
        """Raise ValueError naming the bad value and the valid ones (for `sampler`'s axes)."""
        card = self.for_sampler(sampler) if self.sampler_cards else self
        for axis_name in ("S", "K"):
            axis: Axis = getattr(card, axis_name)
            v = getattr(budget, axis_name)
            if not axis.valid(v):
                where = f"{self.name}" + (f"/{sampler}" if sampler and self.sampler_cards else "")
                raise ValueError(
                    f"{where}: {axis_name}={v} is not valid; valid {axis_name}: {axis.describe()}"
                )

    def check_sampler(self, sampler: str | None) -> str:
        s = sampler or self.samplers[0]
        if s not in self.samplers:
            raise ValueError(f"{self.name}: unknown sampler {s!r}; choose one of {list(self.samplers)}")
        return s

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Generator(Protocol):
    """A trained generative model exposed to the harness.

    `sample` returns the dataset's canonical form (for `digits`: floats in [0, 1], N×1×8×8);
    the harness checks that form and quantises before any metric. Randomness must come only
    from `rng` so the same seed gives identical samples (the global RNG stays untouched).
    Optional but expected: `networks() -> {name: nn.Module}`, the modules `sample` calls, so the
    harness counts real forward calls with hooks (`nfe_measured`) and can compile them.
    """

    card: MethodCard

    def sample(
        self, n: int, budget: Budget, rng: torch.Generator, sampler: str | None = None
    ) -> torch.Tensor: ...

    def nfe(self, budget: Budget, sampler: str | None = None) -> int | None:
        """Declared network calls in sequence for one batch at this budget; None when it depends
        on the data (early stopping, accepted drafts): the harness then reports only what it counts."""
        ...


@runtime_checkable
class HasLikelihood(Protocol):
    """Optional: per-example negative log-likelihood in bits/dim (exact or a bound)."""

    def nll(self, x: torch.Tensor, budget: Budget) -> torch.Tensor | None: ...


STEPS_TAKEN = "steps_taken"
"""The diagnostic a generator with data-dependent sequential steps (blockwise decoding: accepted
drafts end a block early) reports as the mean sequential network calls one sample actually took
(blockwise: 2 per round, draft then verify); the report's charts
along S use it as the S coordinate where a point has it (the nominal S stays in the point's label)."""


@runtime_checkable
class HasDiagnostics(Protocol):
    """Optional: per-batch diagnostic values of the samples just drawn (e.g. a solver's convergence).

    Called by the harness on every quality batch, after `sample(len(x), budget, rng, sampler)`
    returned x, untimed and outside NFE counting; `rng` is a fresh generator in the state that
    call started from, so the method can redraw the batch's noise. Returns {name: finite float}
    with the same names for every batch; the record keeps their means over the quality batches,
    weighted by batch size, in `record["diagnostics"]`. Must be deterministic, like `sample`.
    """

    def diagnostics(self, x: torch.Tensor, budget: Budget, rng: torch.Generator,
                    sampler: str | None = None) -> Mapping[str, float]: ...


@runtime_checkable
class ChecksArgs(Protocol):
    """Optional, on the generator *class*: check validated `args` against the files they name and the
    dataset's canonical form before anything runs (e.g. a model's channels and image size against
    C×H×W), so a model that cannot fit the dataset is one line at planning (exit 2), not a failed point.
    Raise `scalebench.params.ArgsError` naming `where`, the argument and the fix. Must be cheap (read a
    config file; never load weights or import a heavy library)."""

    @classmethod
    def check_args(cls, where: str, args: Mapping[str, Any], form: Any) -> None: ...
