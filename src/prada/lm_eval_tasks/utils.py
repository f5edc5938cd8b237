"""lm-eval-harness scoring for prada's tasks: the output's answer by prada's rules (the text after ` --> `)."""

from prada.answers import ANSWER_SEPARATOR, extract_answer, is_correct


def process_results(doc: dict, results: list[str]) -> dict:
    """acc: prada eval's verdict on the generated text; arrow_rate: whether it holds ` --> `."""
    text = results[0]
    prediction = extract_answer(text, doc["answer_type"], doc.get("choices"))
    return {
        "acc": float(is_correct(prediction, doc["answer"], doc["answer_type"])),
        "arrow_rate": float(ANSWER_SEPARATOR in text),
    }
