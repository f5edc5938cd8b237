"""Hugging Face datasets as prada examples: `data.train_files` / `data.test_files` entries `hf:NAME[#CONFIG][@SPLIT]`.

NAME is a hub id or a local folder (saved with `Dataset.save_to_disk`, or data files `datasets`
can load). `data.hub_columns` maps schema fields to the dataset's columns (`question=problem`);
`data.hub_values` gives constant fields (`answer_type=number`, `domain=arithmetic`). An item
scoped as `DATASET:FIELD=...` applies to that dataset only (DATASET: the entry's NAME, or its
last path part, the dataset's key in eval.json: `gsm8k:answer_type=number`); an unscoped item
applies to every `hf:` dataset that has no scoped item for that field. With several `hf:` datasets
an unscoped value that replaces a dataset's own column of that name is an error (scope it): one
global `answer_type=number` must not silently relabel a yes/no set. A scope that names no `hf:`
entry is an error too. A `rationale` column becomes one correct rationale (teacher `hub:NAME`), so
a dataset with worked solutions trains directly. A boolean answer becomes "yes"/"no". Every row
goes through the JSONL schema's checks (gold answers: `prada.answers.GOLD_RULES`, e.g. GSM8K's
"... #### 7" becomes "7"), with errors naming `hf:...` and the row.
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


def _pairs(items: list[str], key: str) -> dict[str | None, dict[str, str]]:
    """`[FIELD=VALUE, DATASET:FIELD=VALUE, ...]` -> {None: unscoped pairs, DATASET: its pairs}."""
    out: dict[str | None, dict[str, str]] = {}
    for item in items:
        lhs, sep, value = item.partition("=")
        scope, colon, field = lhs.rpartition(":")
        field = field.strip()
        if not sep or field not in FIELDS or (colon and not scope.strip()):
            raise ConfigError(
                f"{key}: {item!r} is not FIELD=VALUE or DATASET:FIELD=VALUE with FIELD one of {', '.join(FIELDS)}"
            )
        out.setdefault(scope.strip() if colon else None, {})[field] = value.strip()
    return out


def _names(name: str) -> set[str]:
    """What a scope may call the dataset of `hf:NAME...`: NAME itself or its last path part."""
    return {name, Path(name).expanduser().name if Path(name).expanduser().exists() else name.rsplit("/", 1)[-1]}


def hub_mapping(
    entry: str, columns: list[str] = (), values: list[str] = (), entries: list[str] = ()
) -> tuple[dict[str, str], dict[str, str], set[str]]:
    """(field -> column, field -> constant, fields set by unscoped values) for the `hf:` entry `entry`.

    `entries` are all train/test file entries of the config: scopes are checked against their names,
    and an unscoped item counts as global when more than one distinct `hf:` dataset is among them.
    """
    name = parse_spec(entry, "train")[0]
    by_scope = {"data.hub_columns": _pairs(list(columns), "data.hub_columns")}
    by_scope["data.hub_values"] = _pairs(list(values), "data.hub_values")
    known = set().union(*(_names(parse_spec(e, "train")[0]) for e in [entry, *entries] if is_hub_spec(e)))
    for key, pairs in by_scope.items():
        unknown = sorted(s for s in pairs if s is not None and s not in known)
        if unknown:
            raise ConfigError(f"{key}: scope {unknown[0]!r} names no hf: entry of data.train_files/test_files")
    mine = _names(name)
    merged = []
    for pairs in by_scope.values():
        fields = dict(pairs.get(None, {}))
        for scope, scoped in pairs.items():
            if scope is not None and scope in mine:
                fields.update(scoped)
        merged.append(fields)
    mapping, constants = merged
    scoped_values = {f for s, p in by_scope["data.hub_values"].items() if s is not None and s in mine for f in p}
    several = len({parse_spec(e, "train")[0] for e in [entry, *entries] if is_hub_spec(e)}) > 1
    global_values = set(by_scope["data.hub_values"].get(None, {})) - scoped_values if several else set()
    return mapping, constants, global_values


def read_hub_examples(
    entry: str,
    columns: list[str] = (),
    values: list[str] = (),
    default_split: str = "train",
    entries: list[str] = (),
) -> list[Example]:
    """The rows of a hub or local dataset split as Examples (see the module docstring)."""
    try:
        import datasets
    except ImportError:
        raise ConfigError(f"{entry}: reading Hugging Face datasets needs `pip install datasets`") from None
    name, config, split = parse_spec(entry, default_split)
    mapping, constants, global_values = hub_mapping(entry, columns, values, entries)
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
    replaced = sorted(f for f in global_values if f in table.column_names and f not in mapping)
    if replaced:
        raise ConfigError(
            f"data.hub_values: {replaced[0]}={constants[replaced[0]]} applies to every hf: dataset, and {entry} "
            f"has its own {replaced[0]!r} column; scope it to the datasets it is meant for "
            f"(e.g. {stem}:{replaced[0]}=...), or map the column with data.hub_columns"
        )
    examples = []
    for i, row in enumerate(table):
        obj: dict = {"dataset": stem, "id": f"{split}-{i}"}
        obj.update({f: row[f] for f in FIELDS if f in row and f not in mapping})  # columns named like the schema
        for field, column in mapping.items():
            if column not in row:
                raise DataError(f"no column {column!r} (columns: {', '.join(row)})", entry, i, field)
            obj[field] = row[column]
        obj.update(constants)
        if isinstance(obj.get("answer"), bool):  # StrategyQA-style true/false columns
            obj["answer"] = "yes" if obj["answer"] else "no"
        obj = {k: str(v) if k in ("answer", "id") and isinstance(v, (int, float)) else v for k, v in obj.items()}
        rationale = obj.pop("rationale", None)
        if rationale:
            obj["rationales"] = [
                {"text": str(rationale), "answer": obj.get("answer", ""), "correct": True, "teacher": f"hub:{stem}"}
            ]
        try:
            examples.append(example_from_dict(obj, entry, i))
        except DataError as e:
            if e.field in ("answer", "answer_type") and "answer_type" in global_values:
                raise DataError(
                    f"{e} (answer_type={constants['answer_type']} comes from an unscoped data.hub_values item, "
                    f"which applies to every hf: dataset; scope it, e.g. {stem}:answer_type=...)"
                ) from None
            raise
    if not examples:
        raise DataError(f"split {split!r} has no rows", entry)
    return examples


def read_example_file(
    entry: str, columns: list[str] = (), values: list[str] = (), split: str = "train", entries: list[str] = ()
) -> list:
    """A `data.train_files` / `test_files` entry: a JSONL file, or `hf:...` through `datasets`.

    `entries`: every train/test file entry of the config, for per-dataset hub mappings (`hub_mapping`).
    """
    from prada.data.schema import read_examples

    if is_hub_spec(entry):
        return read_hub_examples(entry, columns, values, split, entries)
    return read_examples(entry)
