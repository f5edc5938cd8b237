"""Stage 3: turn examples with rationales into student training text (Fine-tune-CoT format)."""
