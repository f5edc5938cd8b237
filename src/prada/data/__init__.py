"""Stage 1 of the flow: datasets as JSONL examples (the real ftcot12 benchmark, the synthetic suite, custom files)."""
