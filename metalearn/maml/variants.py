"""What a learner of the MAML family does, declared as data: the learners and engines read these
fields and nothing else (never a learner's name).

Inner step on the adapted set A (`adaptation.fine_tune`):  θ_A ← θ_A − α ⊙ ∇_{θ_A} L_support(θ).

- `first_order`: the meta-gradient holds the inner gradients constant, ∂θ_A′/∂θ ≈ I (FOMAML,
  Finn et al. 2017, section 5.2); otherwise it differentiates through them (second order).
- `adapt`: A is every parameter ("all") or those of `model.head` ("head": ANIL, Raghu et al. 2020);
  the others are shared by all tasks and trained only by the outer loop.
- `learned_rates`: α is a tensor per adapted parameter, meta-trained with θ from α₀ = `inner_lr`
  (Meta-SGD, Li et al. 2017); otherwise α = `inner_lr` everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ADAPTED_SETS = ("all", "head")


@dataclass(frozen=True)
class MamlVariant:
    """One member of the MAML family: which parameters its inner loop adapts, with which rates,
    and whether its meta-gradient is first or second order."""

    first_order: bool = False  # hold the inner gradients constant in the meta-gradient
    adapt: Literal["all", "head"] = "all"  # the parameters the inner loop adapts
    learned_rates: bool = False  # per-parameter inner rates, meta-trained with θ

    def __post_init__(self):
        if self.adapt not in ADAPTED_SETS:
            raise ValueError(f"unknown adapt {self.adapt!r}; valid: {', '.join(ADAPTED_SETS)}")


MAML = MamlVariant()  # Finn et al. 2017
FOMAML = MamlVariant(first_order=True)  # Finn et al. 2017, section 5.2
ANIL = MamlVariant(adapt="head")  # Raghu et al. 2020
FOANIL = MamlVariant(first_order=True, adapt="head")  # ANIL's inner loop, FOMAML's meta-gradient
META_SGD = MamlVariant(learned_rates=True)  # Li et al. 2017
