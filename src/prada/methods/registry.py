"""Method name -> capabilities. Method names appear only here; code paths branch on capabilities."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MethodSpec:
    """What a method switches on. `backbone` is the default; prada lets the config override it."""

    train: bool
    prompt: bool
    adversary: bool
    backbone: str  # full | lora | frozen
    prompt_style: str = "ftcot"  # ftcot: "{q} ###" ; zeroshot_cot: "Q: {q}\nA: Let's think step by step."
    model: bool = True  # False: no student at all (the label prior answers)
    rationale: bool = True  # False: targets are " --> {answer}" only (answer-only fine-tuning)
    target_lm: bool = False  # next-token loss on the unlabelled target questions (train.target_lm_weight)
    label: str = ""  # how reports name the method, where its key alone would mislead

    @property
    def uses_target_questions(self) -> bool:
        """Whether training steps also take a batch of the unlabelled target questions."""
        return self.adversary or self.target_lm


METHODS: dict[str, MethodSpec] = {
    "prior": MethodSpec(
        train=False,
        prompt=False,
        adversary=False,
        backbone="frozen",
        model=False,
        label="prior (most frequent train answer per dataset; no model)",
    ),
    "zero-shot": MethodSpec(
        train=False,
        prompt=False,
        adversary=False,
        backbone="frozen",
        prompt_style="zeroshot_cot",
        label="zero-shot (single-stage Zero-shot-CoT prompt, no answer-extraction stage)",
    ),
    "answer-ft": MethodSpec(train=True, prompt=False, adversary=False, backbone="full", rationale=False),
    "ft-cot": MethodSpec(train=True, prompt=False, adversary=False, backbone="full"),
    "ft-cot-tlm": MethodSpec(train=True, prompt=False, adversary=False, backbone="full", target_lm=True),
    "ptune": MethodSpec(train=True, prompt=True, adversary=False, backbone="full"),
    "dann": MethodSpec(train=True, prompt=False, adversary=True, backbone="full"),
    "prada": MethodSpec(train=True, prompt=True, adversary=True, backbone="full"),
    "prada-tlm": MethodSpec(train=True, prompt=True, adversary=True, backbone="full", target_lm=True),
}

# Paired comparisons a report shows (a - b), where both methods ran: PRADA against every baseline it
# must beat, and the single-part contrasts that say which part helps (the adversary, the prompt).
COMPARISONS: tuple[tuple[str, str], ...] = (
    ("prada", "ft-cot"),
    ("prada", "ptune"),
    ("dann", "ft-cot"),
    ("prada", "ft-cot-tlm"),
    ("prada-tlm", "ft-cot-tlm"),
    ("prada-tlm", "prada"),
    ("prada-tlm", "ft-cot"),
    ("prada", "dann"),
    ("prada", "answer-ft"),
    ("prada", "zero-shot"),
    ("prada", "prior"),
    ("ptune", "ft-cot"),
    ("ft-cot-tlm", "ft-cot"),
    ("ft-cot", "answer-ft"),
    ("ft-cot", "zero-shot"),
    ("ft-cot", "prior"),
)


def adversary_pairs() -> list[tuple[str, str]]:
    """COMPARISONS (a, b) where a is b plus the adversary and nothing else (prada vs ptune, dann vs ft-cot)."""
    from dataclasses import replace

    return [(a, b) for a, b in COMPARISONS if METHODS[a] == replace(METHODS[b], adversary=True) != METHODS[b]]


def comparisons(methods: list[str]) -> list[tuple[str, str]]:
    """The COMPARISONS whose two methods both ran, in report order."""
    return [(a, b) for a, b in COMPARISONS if a in methods and b in methods]


def method_spec(name: str) -> MethodSpec:
    if name not in METHODS:
        from prada.errors import ConfigError

        raise ConfigError(f"method: unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]
