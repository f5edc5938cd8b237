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


METHODS: dict[str, MethodSpec] = {
    "zero-shot": MethodSpec(train=False, prompt=False, adversary=False, backbone="frozen", prompt_style="zeroshot_cot"),
    "ft-cot": MethodSpec(train=True, prompt=False, adversary=False, backbone="full"),
    "ptune": MethodSpec(train=True, prompt=True, adversary=False, backbone="full"),
    "dann": MethodSpec(train=True, prompt=False, adversary=True, backbone="full"),
    "prada": MethodSpec(train=True, prompt=True, adversary=True, backbone="full"),
}


def method_spec(name: str) -> MethodSpec:
    if name not in METHODS:
        from prada.errors import ConfigError

        raise ConfigError(f"method: unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]
