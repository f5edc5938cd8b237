"""The continuous prompt: peft's P-tuning PromptEncoder producing virtual-token embeddings.

We keep peft's module and config (so the saved adapter is a plain peft P-tuning adapter) but
prepend the embeddings ourselves, which lets the same prompt sit in front of a full, LoRA or
frozen backbone and lets the adversary see where the real tokens start.
"""

from __future__ import annotations

from pathlib import Path

import torch
from peft import PromptEncoderConfig, TaskType
from peft.tuners.p_tuning import PromptEncoder
from safetensors.torch import save_file
from torch import nn


class ContinuousPrompt(nn.Module):
    """num_virtual_tokens trainable embeddings, reparameterised by an MLP or LSTM encoder."""

    def __init__(self, token_dim: int, num_virtual_tokens: int, encoder: str, encoder_hidden_size: int):
        super().__init__()
        self.config = PromptEncoderConfig(
            task_type=TaskType.CAUSAL_LM,
            num_virtual_tokens=num_virtual_tokens,
            token_dim=token_dim,
            num_transformer_submodules=1,
            encoder_reparameterization_type=encoder.upper(),
            encoder_hidden_size=encoder_hidden_size,
        )
        self.encoder = PromptEncoder(self.config)
        self.register_buffer("indices", torch.arange(num_virtual_tokens), persistent=False)

    @property
    def num_virtual_tokens(self) -> int:
        return self.config.num_virtual_tokens

    def forward(self, batch_size: int) -> torch.Tensor:
        """Returns (batch_size, num_virtual_tokens, token_dim)."""
        prompt = self.encoder(self.indices.unsqueeze(0))  # (1, V, D)
        return prompt.expand(batch_size, -1, -1)

    def save_peft_adapter(self, folder: Path, base_model_name_or_path: str) -> None:
        """Write a plain peft P-tuning adapter (the encoder's output embeddings, as peft itself saves them)."""
        folder.mkdir(parents=True, exist_ok=True)
        self.config.base_model_name_or_path = base_model_name_or_path
        self.config.inference_mode = True
        self.config.save_pretrained(str(folder))
        with torch.no_grad():
            embeddings = self.forward(1)[0].detach().float().contiguous()
        save_file({"prompt_embeddings": embeddings}, str(folder / "adapter_model.safetensors"))


class FrozenPrompt(nn.Module):
    """A saved prompt loaded for evaluation: fixed virtual-token embeddings."""

    def __init__(self, embeddings: torch.Tensor):
        super().__init__()
        self.register_buffer("embeddings", embeddings)

    @property
    def num_virtual_tokens(self) -> int:
        return self.embeddings.shape[0]

    def forward(self, batch_size: int) -> torch.Tensor:
        return self.embeddings.unsqueeze(0).expand(batch_size, -1, -1)
