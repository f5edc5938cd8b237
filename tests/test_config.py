import pytest
from tiny import REPO, TINY_YAML

from prada.config import load_config
from prada.errors import ConfigError


def test_precedence_yaml_then_overrides():
    cfg = load_config(TINY_YAML, ["train.lr=0.5", "data.target_domains=[symbolic]", "prompt.encoder=lstm"])
    assert cfg.train.lr == 0.5 and cfg.train.max_steps == 12  # override wins, YAML kept
    assert cfg.data.target_domains == ["symbolic"] and cfg.prompt.encoder == "lstm"


@pytest.mark.parametrize(
    "override, key",
    [
        ("method=magic", "method"),
        ("train.lr=fast", "train.lr"),
        ("train.max_steps=1.5", "train.max_steps"),
        ("nope=1", "nope"),
        ("prompt.encoder=gru", "prompt.encoder"),
        ("train.batch_size=0", "train.batch_size"),
    ],
)
def test_errors_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(TINY_YAML, [override])


def test_target_that_is_also_a_source_is_rejected():
    with pytest.raises(ConfigError, match="data.target_domains"):
        load_config(TINY_YAML, ["data.source_domains=[other]", "data.target_domains=[other]"])


def test_backbone_defaults_from_method():
    assert load_config(TINY_YAML, ["method=ft-cot"]).backbone == "full"
    assert load_config(TINY_YAML, ["method=zero-shot"]).backbone == "frozen"
    assert load_config(TINY_YAML, ["method=prada", "train.backbone=lora"]).backbone == "lora"


def test_run_configs_in_configs_folder_load():
    """Training configs (those with a `method:` or `student:` at the top) load and validate."""
    import yaml

    for path in sorted((REPO / "configs").glob("*.yaml")):
        raw = yaml.safe_load(path.read_text())
        if "methods" in raw or "protocol" in raw:
            continue  # experiment configs: tested with the experiment loader
        load_config(path)


def test_device_switches_take_auto_on_off_from_yaml_and_the_command_line(tmp_path):
    """on/off are YAML 1.1 booleans; a switch reads them as the words, and rejects anything else by key."""
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("train:\n  share_prompt_prefix: off\neval:\n  weight_first_linears: on\n")
    cfg = load_config(cfg_file)
    assert (cfg.train.share_prompt_prefix, cfg.eval.weight_first_linears) == ("off", "on")
    cfg = load_config(None, ["train.share_prompt_prefix=on", "eval.weight_first_linears=off"])
    assert (cfg.train.share_prompt_prefix, cfg.eval.weight_first_linears) == ("on", "off")
    assert load_config().train.share_prompt_prefix == "auto" and load_config().eval.weight_first_linears == "auto"
    with pytest.raises(ConfigError, match="train.share_prompt_prefix"):
        load_config(None, ["train.share_prompt_prefix=sometimes"])


def test_every_rule_sits_on_its_field_and_names_its_key():
    """A closed choice is a Literal type, a range rule field metadata: validate finds both by walking the fields."""
    import typing

    from prada.config import _fields

    keys = list(_fields(load_config()))
    assert len({k for k, *_ in keys}) == len(keys) > 60
    checked = 0
    for key, value, typ, meta in keys:
        if typing.get_origin(typ) is typing.Literal:
            bad = "no-such-choice"
        elif "check" in meta and isinstance(value, (int, float)) and not isinstance(value, bool):
            bad = next(b for b in (-1, float("inf")) if meta["check"](b))  # lora.alpha only refuses inf
        else:
            continue
        assert meta.get("check", lambda v: None)(value) is None, key  # the default passes its own rule
        with pytest.raises(ConfigError, match=f"^{key.replace('.', r'[.]')}: "):
            load_config(None, [f"{key}={bad}"])
        checked += 1
    assert checked > 40


def test_model_selection_keys_need_held_out_evaluations():
    for key in ("train.keep_best=true", "train.early_stopping_patience=2"):
        with pytest.raises(
            ConfigError, match=r"^train\.(keep_best|early_stopping_patience): needs held-out .*eval_every"
        ):
            load_config(TINY_YAML, [key])
        load_config(TINY_YAML, [key, "train.eval_every=4"])
    with pytest.raises(ConfigError, match=r"^train\.early_stopping_patience: "):
        load_config(TINY_YAML, ["train.early_stopping_patience=-1", "train.eval_every=4"])


def test_gradient_checkpointing_turns_the_shared_prompt_prefix_off_and_refuses_it_on():
    """Checkpointed layers drop the KV cache the shared prefix is passed as: auto resolves to off, on is an error
    for a prompt method (a method without a prompt never takes that path)."""
    from prada.run_dir import resolve_switches

    on = "train.gradient_checkpointing=true"
    assert resolve_switches(load_config(TINY_YAML, ["method=prada"]), "cpu")["share_prompt_prefix"] is True
    assert resolve_switches(load_config(TINY_YAML, ["method=prada", on]), "cpu")["share_prompt_prefix"] is False
    assert resolve_switches(load_config(TINY_YAML, ["method=prada", on]), "cuda")["share_prompt_prefix"] is False
    with pytest.raises(
        ConfigError, match=r"^train\.share_prompt_prefix: on cannot run with train\.gradient_checkpointing"
    ):
        load_config(TINY_YAML, ["method=prada", on, "train.share_prompt_prefix=on"])
    load_config(TINY_YAML, ["method=prada", on, "train.share_prompt_prefix=off"])
    load_config(TINY_YAML, ["method=ft-cot", on, "train.share_prompt_prefix=on"])


def test_lora_target_modules_take_all_linear_or_a_list_of_names(tmp_path):
    assert load_config().lora.target_modules == ["all-linear"]
    assert load_config(None, ["lora.target_modules=[q_proj, v_proj]"]).lora.target_modules == ["q_proj", "v_proj"]
    (tmp_path / "c.yaml").write_text("lora:\n  target_modules: all-linear\n")
    assert load_config(tmp_path / "c.yaml").lora.target_modules == ["all-linear"]
    for bad in ("[]", "[all-linear, q_proj]"):
        with pytest.raises(ConfigError, match=r"^lora\.target_modules: "):
            load_config(None, [f"lora.target_modules={bad}"])
    assert load_config().lora.target_modules is not load_config().lora.target_modules  # no shared default list


def test_a_shipped_config_is_found_by_its_name_from_any_folder(tmp_path, monkeypatch):
    from prada.config import config_path, shipped_configs
    from prada.experiment import load_experiment

    monkeypatch.chdir(tmp_path)  # no configs/ here: the names resolve to prada's own files
    shipped = shipped_configs()
    assert {p.stem for p in (REPO / "configs").glob("*.yaml")} | {"default"} <= set(shipped)
    for name in ("tiny", "tiny.yaml", "configs/tiny.yaml"):
        assert config_path(name) == shipped["tiny"]
    assert load_config("tiny").train.max_steps == load_config(TINY_YAML).train.max_steps
    assert (
        load_experiment("ftcot12-lodo-cpu").methods == load_experiment(REPO / "configs/ftcot12-lodo-cpu.yaml").methods
    )
    (tmp_path / "tiny.yaml").write_text("train:\n  max_steps: 3\n")  # a file of the user's own wins over the name
    assert load_config("tiny.yaml").train.max_steps == 3
    with pytest.raises(
        ConfigError, match=r"^nope\.yaml: config file not found; the configs that ship with prada are .*tiny"
    ):
        load_config("nope.yaml")
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("elsewhere/tiny.yaml")  # a path to another folder is never replaced by a shipped file
