"""Training configuration: a YAML file plus ``key=value`` overrides, checked as a whole by typed models.

Every level rejects unknown keys (naming the closest known one), coerces what YAML leaves as strings
(``lr: 3e-4``) and names the key of any value of the wrong type, so a typo never trains the defaults.
The checked config is handed on as a plain dict (``load_config``/``validate_config``), which is also
what checkpoints store.
"""

from __future__ import annotations

import copy
import difflib
import re
from dataclasses import fields as dataclass_fields
from dataclasses import is_dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..codecs import get_decoder
from ..data.transforms import AugmentConfig
from ..models.config import ModelConfig
from ..models.variants import list_variants

PositiveInt = Annotated[int, Field(gt=0)]
Count = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
IdList = str | list[int] | None


class ConfigError(ValueError):
    """A config that does not validate; the message has one line per problem, each naming its key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class InitSection(_Section):
    imagenet: str | None = None  # a torchvision ResNet-50 / HRNet ImageNet file for the backbone
    # tpose or released weights to start from (a file or a registry tag), of any keypoint set (loaded by joint name)
    weights: str | None = None
    joint_map: dict[str, str | list[str] | None] = {}  # model joint -> the weights' joint(s), mean of a list


class DataSetConfig(_Section):
    """One labelled data set: ``lspet``/``lsp`` (``root``, ``first``, ``last``) or any COCO-format file."""

    type: Literal["lspet", "lsp", "coco"]
    name: str | None = None
    root: str | None = None
    first: PositiveInt | None = None
    last: PositiveInt | None = None
    ann_file: str | None = None
    image_dir: str | None = None
    keypoint_set: str | None = None  # COCO-format: the file's own set (default: read from the file)
    joint_map: dict[str, str | list[str] | None] = {}  # model joint -> data set joint(s), mean of a list
    weight: PositiveFloat = 1.0  # each person is drawn weight times per epoch on average
    image_ids: IdList = None  # keep only these images (a list, or a text file of ids)
    exclude_image_ids: IdList = None  # never use these (e.g. a validation split)

    @model_validator(mode="after")
    def _fields_of_its_type(self) -> DataSetConfig:
        need = {"lspet": ("root",), "lsp": ("root",), "coco": ("ann_file", "image_dir")}[self.type]
        missing = [f for f in need if getattr(self, f) is None]
        if missing:
            raise ValueError(f"a data set of type {self.type!r} needs {', '.join(missing)}")
        wrong = ("ann_file", "image_dir", "keypoint_set") if self.type != "coco" else ("root", "first", "last")
        given = [f for f in wrong if getattr(self, f) is not None]
        if given:
            raise ValueError(f"{', '.join(given)} do not apply to a data set of type {self.type!r}")
        if self.first is not None and self.last is not None and self.first > self.last:
            raise ValueError(f"first ({self.first}) is after last ({self.last})")
        if self.name is None:
            self.name = self.type if self.type != "coco" else Path(self.ann_file or "coco").stem
        return self


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, dict) else value


class DataSection(_Section):
    train: list[DataSetConfig] | None = None  # one data set or a list of them
    val: list[DataSetConfig] | None = None  # the first decides the best checkpoint
    workers: Count = 2
    cache_dir: str | None = "cache"
    cache_size: PositiveInt | None = 176
    cache_quality: Annotated[int, Field(ge=1, le=100)] = 90
    sigma: PositiveFloat = 2.0
    use_joint_weights: bool = False

    _one_or_many = field_validator("train", "val", mode="before")(_as_list)

    @model_validator(mode="after")
    def _unique_names(self) -> DataSection:
        for split in ("train", "val"):
            names = [d.name for d in getattr(self, split) or []]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"data.{split} names {twice} more than once; give each data set its own name")
        return self


class FreezeSection(_Section):
    """Small data: keep the pretrained part fixed while the fresh final layer settles (``train.freeze``)."""

    part: Literal["backbone", "all_but_head"] = "backbone"  # all_but_head: everything but the final layer
    epochs: Count = 0  # the first N epochs; 0 = never frozen


class TrainSection(_Section):
    epochs: PositiveInt = 230
    batch_size: PositiveInt = 32
    optimizer: Literal["adam", "adamw"] = "adam"
    lr: PositiveFloat = 1e-4
    lr_end: NonNegative = 1e-5
    weight_decay: NonNegative = 0.0
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    schedule_per: Literal["epoch", "step"] = "epoch"  # epoch: the released recipe
    warmup_steps: Count = 0
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    channels_last: bool = True
    fast_dropout: bool = True  # CPU dropout masks from 16 random bits per element (tpose.models.dropout)
    compile: bool = False
    grad_clip: NonNegative = 0.0
    seed: int = 0
    threads: Count = 0  # 0 = PyTorch's default
    max_steps_per_epoch: Count = 0  # 0 = the whole epoch; small values make quick smoke runs
    time_limit_minutes: NonNegative = 0.0  # stop cleanly (after a checkpoint) when spent; resume later
    # progressive resizing: [[first epoch (1-based), [H, W]], ...]; the model's own input size otherwise
    input_sizes: list[tuple[PositiveInt, tuple[PositiveInt, PositiveInt]]] = []
    freeze: FreezeSection = FreezeSection()
    # the learning rate of the tensors init loaded (init.weights, init.imagenet) is lr times this
    pretrained_lr_scale: Annotated[float, Field(gt=0, le=1)] = 1.0

    @field_validator("input_sizes")
    @classmethod
    def _increasing_epochs(cls, value: list) -> list:
        epochs = [e for e, _ in value]
        if epochs != sorted(set(epochs)):
            raise ValueError(f"epochs must increase, got {epochs}")
        return value

    @model_validator(mode="after")
    def _freeze_within_run(self) -> TrainSection:
        if self.freeze.epochs > self.epochs:
            raise ValueError(f"freeze.epochs ({self.freeze.epochs}) is more than epochs ({self.epochs})")
        return self


class EvalSection(_Section):
    every: Count = 1
    flip_test: bool = True
    decode: str = "dark"  # a registered decoding method (tpose.list_decoders())
    metric: Literal["pck", "pckh", "coco"] = "pck"
    joint_subset: list[str] | None = None
    batch_size: PositiveInt = 64
    max_samples: Count = 0

    @field_validator("decode")
    @classmethod
    def _registered_decoder(cls, value: str) -> str:
        get_decoder(value)  # an unregistered name fails, naming the registered ones
        return value


AugmentSection = AugmentConfig


class TrainingConfig(_Section):
    model: str = "transpose_r_a4"
    model_overrides: dict[str, Any] = {}
    keypoint_set: str = "coco17"
    init: InitSection = InitSection()
    data: DataSection = DataSection()
    augment: AugmentSection = AugmentSection()
    train: TrainSection = TrainSection()
    eval: EvalSection = EvalSection()
    output_dir: str = "runs/exp"

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value not in list_variants():
            raise ValueError(f"unknown model {value!r}{_suggest(value, list_variants())}; "
                             f"known: {', '.join(list_variants())}")
        return value

    @field_validator("model_overrides")
    @classmethod
    def _known_overrides(cls, value: dict[str, Any]) -> dict[str, Any]:
        known = list(ModelConfig.__dataclass_fields__)
        for key in value:
            if key not in known:
                raise ValueError(f"unknown key {key!r}{_suggest(key, known)}; known: {', '.join(known)}")
        return value

    @model_validator(mode="after")
    def _pretrained_options_need_weights(self) -> TrainingConfig:
        # freezing or slowing random weights would only slow training: these options are for a pretrained start
        if not (self.init.weights or self.init.imagenet):
            given = [k for k, on in (("train.freeze.epochs", self.train.freeze.epochs > 0),
                                     ("train.pretrained_lr_scale", self.train.pretrained_lr_scale != 1.0)) if on]
            if given:
                raise ValueError(f"{' and '.join(given)} only make sense for pretrained weights: set init.weights "
                                 "(or init.imagenet) too")
        return self


DEFAULTS: dict[str, Any] = TrainingConfig().model_dump(mode="json")


def _suggest(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(str(word), known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _fields_at(loc: tuple) -> list[str]:
    """Known keys of the section at ``loc`` (a pydantic error location without its last element)."""
    model: Any = TrainingConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", getattr(model, "__pydantic_fields__", {})).get(part)
        if field is None:
            return []
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        inner = next((a for a in (ann, *args, *(x for a in args for x in getattr(a, "__args__", ())))
                      if isinstance(a, type) and (hasattr(a, "__pydantic_fields__") or is_dataclass(a))), None)
        if inner is None:
            return []
        model = inner
    if is_dataclass(model) and not hasattr(model, "model_fields"):
        return [f.name for f in dataclass_fields(model)]
    return list(getattr(model, "__pydantic_fields__", {}))


_EXPECTED = {
    "int_parsing": "an integer", "int_from_float": "an integer", "int_type": "an integer",
    "float_parsing": "a number", "float_type": "a number", "bool_parsing": "true or false",
    "bool_type": "true or false", "string_type": "a string", "dict_type": "a mapping", "model_type": "a mapping",
    "list_type": "a list", "tuple_type": "a list", "dataclass_type": "a mapping",
}


def _format_error(err: dict[str, Any]) -> str:
    # pydantic locations carry union branch names (e.g. "list[DataSetConfig]"): keep the config's keys
    loc = tuple(p for p in err["loc"] if isinstance(p, int) or ("[" not in p and p not in ("str", "int", "list")))
    path = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(loc))
    kind, value = err["type"], err.get("input")
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        known = _fields_at(loc[:-1])
        where = ".".join(str(p) for p in loc[:-1]) or "the top level"
        return (f"{path}: unknown key {loc[-1]!r} in {where}{_suggest(str(loc[-1]), known)}"
                + (f"; known: {', '.join(known)}" if known else ""))
    if kind in _EXPECTED:
        return f"{path}: expected {_EXPECTED[kind]}, got {value!r}"
    if kind == "literal_error":
        return f"{path}: expected one of {err['ctx']['expected']}, got {value!r}"
    if kind == "missing":
        return f"{path}: required"
    if kind in ("greater_than", "greater_than_equal", "less_than_equal", "less_than"):
        return f"{path}: {err['msg'].replace('Input should be', 'must be')}, got {value!r}"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{path}: {msg}" if path else msg


def validate_config(cfg: dict[str, Any] | TrainingConfig, source: str = "the config") -> dict[str, Any]:
    """The config with every key checked and every value coerced, defaults filled in; ConfigError otherwise."""
    if isinstance(cfg, TrainingConfig):
        return cfg.model_dump(mode="json")
    if not isinstance(cfg, dict):
        raise ConfigError(f"{source}: a training config must be a mapping, got {type(cfg).__name__}")
    try:
        checked = TrainingConfig.model_validate(cfg)
    except ValidationError as err:
        # a wrong value inside a union shows up once per branch: report each key once
        lines = list(dict.fromkeys(_format_error(e) for e in err.errors()))
        raise ConfigError(f"{source}: " + ("\n  ".join(lines) if len(lines) == 1 else
                                          "invalid config:\n  " + "\n  ".join(lines))) from None
    return checked.model_dump(mode="json")


class _Loader(yaml.SafeLoader):
    """YAML with YAML 1.2's numbers: PyYAML (YAML 1.1) reads ``3e-4`` (no dot) as a string."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
               r"|[0-9][0-9_]*[eE][-+]?[0-9]+|\.inf|\.nan)$", re.IGNORECASE),
    list("-+0123456789."),
)


def read_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def parse_override(text: str) -> tuple[list[str], Any]:
    """``train.lr=3e-4`` -> (["train", "lr"], 0.0003); values are read as YAML scalars/lists."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value (e.g. train.epochs=10)")
    key, raw = text.split("=", 1)
    value = read_yaml(raw) if raw else None
    return key.strip().split("."), value


def _set(node: Any, keys: list[str], value: Any, text: str) -> None:
    for i, k in enumerate(keys):
        last = i == len(keys) - 1
        if isinstance(node, list):
            if not k.isdigit() or int(k) >= len(node):
                raise ConfigError(f"override {text!r}: {k!r} is not an index of a list of {len(node)}")
            k = int(k)
            if last:
                node[k] = value
            else:
                node = node[k]
            continue
        if last:
            node[k] = value
        else:
            if not isinstance(node.get(k), (dict, list)):
                node[k] = {}
            node = node[k]


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> dict[str, Any]:
    """Defaults <- YAML file <- overrides, validated (see ``validate_config``)."""
    cfg: dict[str, Any] = {}
    source = "the config"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise FileNotFoundError(f"training config {path} not found")
        try:
            data = read_yaml(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a training config must be a mapping, got {type(data).__name__}")
        cfg = copy.deepcopy(data)
    for text in overrides or []:
        keys, value = parse_override(text)
        _set(cfg, keys, value, text)
    if overrides:
        source += f" with overrides {' '.join(overrides)}"
    return validate_config(cfg, source)
