"""Hugging Face datasets as prada examples: `data.train_files` / `data.test_files` entries `hf:NAME[#CONFIG][@SPLIT]`.

NAME is a hub id or a local folder (saved with `Dataset.save_to_disk`, or data files `datasets`
can load). `data.hub_columns` maps schema fields to the dataset's columns (`question=problem`);
`data.hub_values` gives constant fields (`answer_type=number`, `domain=arithmetic`). A `rationale`
column becomes one correct rationale (teacher `hub:NAME`), so a dataset with worked solutions trains
directly. Every row goes through the JSONL schema's checks, with errors naming `hf:...` and the row.
"""

from __future__ import annotations

from pathlib import Path

from prada.data.schema import Example, example_from_dict
from prada.errors import ConfigError, DataError

PREFIX = "hf:"
FIELDS = ("question", "answer", "answer_type", "domain", "dataset", "id", "choices", "rationale")


def is_hub_spec(entry: str) -> bool:
    return str(entry).startswith(PREFIX)


def parse_spec(entry: str, default_split: str) -> tuple[str, str | None, str]:
    """`hf:NAME#CONFIG@SPLIT` -> (NAME, CONFIG or None, SPLIT)."""
    rest = entry[len(PREFIX) :]
    rest, _, split = rest.rpartition("@") if "@" in rest else (rest, "", default_split)
    name, _, config = rest.partition("#")
    if not name:
        raise ConfigError(f"{entry!r}: expected hf:NAME[#CONFIG][@SPLIT], e.g. hf:openai/gsm8k#main@train")
    return name, config or None, split


def _pairs(items: list[str], key: str) -> dict[str, str]:
    out = {}
    for item in items:
        field, sep, value = item.partition("=")
        if not sep or field.strip() not in FIELDS:
            raise ConfigError(f"{key}: {item!r} is not FIELD=VALUE with FIELD one of {', '.join(FIELDS)}")
        out[field.strip()] = value.strip()
    return out


def read_hub_examples(
    entry: str, columns: list[str] = (), values: list[str] = (), default_split: str = "train"
) -> list[Example]:
    """The rows of a hub or local dataset split as Examples (see the module docstring)."""
    try:
        import datasets
    except ImportError:
        raise ConfigError(f"{entry}: reading Hugging Face datasets needs `pip install datasets`") from None
    name, config, split = parse_spec(entry, default_split)
    mapping, constants = _pairs(list(columns), "data.hub_columns"), _pairs(list(values), "data.hub_values")
    folder = Path(name).expanduser()
    try:
        if (folder / "dataset_info.json").exists() or (folder / "dataset_dict.json").exists():
            table = datasets.load_from_disk(str(folder))  # Dataset.save_to_disk / DatasetDict.save_to_disk
            table = table[split] if isinstance(table, datasets.DatasetDict) else table
        else:
            table = datasets.load_dataset(str(folder) if folder.exists() else name, config, split=split)
    except (FileNotFoundError, ValueError, KeyError, OSError) as e:
        raise DataError(f"cannot load this dataset split ({type(e).__name__}: {e})", entry) from None
    stem = folder.name if folder.exists() else name.rsplit("/", 1)[-1]
    examples = []
    for i, row in enumerate(table):
        obj: dict = {"dataset": stem, "id": f"{split}-{i}"}
        obj.update({f: row[f] for f in FIELDS if f in row and f not in mapping})  # columns named like the schema
        for field, column in mapping.items():
            if column not in row:
                raise DataError(f"no column {column!r} (columns: {', '.join(row)})", entry, i, field)
            obj[field] = row[column]
        obj.update(constants)
        obj = {k: str(v) if k in ("answer", "id") and isinstance(v, (int, float)) else v for k, v in obj.items()}
        rationale = obj.pop("rationale", None)
        if rationale:
            obj["rationales"] = [
                {"text": str(rationale), "answer": obj.get("answer", ""), "correct": True, "teacher": f"hub:{stem}"}
            ]
        examples.append(example_from_dict(obj, entry, i))
    if not examples:
        raise DataError(f"split {split!r} has no rows", entry)
    return examples


def read_example_file(entry: str, columns: list[str] = (), values: list[str] = (), split: str = "train") -> list:
    """A `data.train_files` / `test_files` entry: a JSONL file, or `hf:...` through `datasets`."""
    from prada.data.schema import read_examples

    return read_hub_examples(entry, columns, values, split) if is_hub_spec(entry) else read_examples(entry)
