"""Teacher stage: Zero-shot-CoT rationales from an OpenAI-compatible endpoint or a local model, cached append-only."""

from prada.teacher.client import TeacherClient, TeacherError, make_client, parse_teacher
from prada.teacher.zeroshot_cot import teach

__all__ = ["TeacherClient", "TeacherError", "make_client", "parse_teacher", "teach"]
