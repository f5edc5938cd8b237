"""Stage 4: the student model and THE training loop."""
