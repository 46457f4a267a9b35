"""The trainer's settings dataclasses: reading config sections and refusing bad values."""

from __future__ import annotations

import pytest

from detbox.apis.training import _trainer_options
from detbox.config import ConfigDict
from detbox.engine.settings import (
    CheckpointSettings,
    LogSettings,
    RuntimeSettings,
    TrainSettings,
)
from detbox.errors import ConfigError


def test_missing_section_gives_the_defaults_and_given_keys_override_them():
    assert TrainSettings.from_config(None) == TrainSettings()
    train = TrainSettings.from_config({"max_epochs": 3, "grad_clip": {"max_norm": 10}})
    assert (train.max_epochs, train.val_interval, train.grad_clip) == (3, 1, {"max_norm": 10})
    assert CheckpointSettings.from_config({"max_keep": None}).max_keep is None
    assert LogSettings.from_config({"vis_score_thr": 1}).vis_score_thr == 1  # an int is a number
    runtime = RuntimeSettings.from_config({"amp": True, "sync_bn": True})
    assert runtime.amp is True and runtime.sync_bn and not runtime.find_unused_parameters


@pytest.mark.parametrize(("cls", "section", "message"), [
    (TrainSettings, {"max_epoch": 3},
     r"config section 'train_cfg' got an unknown key 'max_epoch'\. Did you mean 'max_epochs'\?"),
    (CheckpointSettings, {"max_keeps": 2},
     r"section 'checkpoint' got an unknown key 'max_keeps'\. Did you mean 'max_keep'\?"),
    (LogSettings, {"intervall": 5}, r"section 'log' .* 'intervall'\. Did you mean 'interval'\?"),
    # set by code, not by the config
    (LogSettings, {"progress_bar": True}, r"unknown key 'progress_bar'"),
    (RuntimeSettings, {"find_unused_parameters": True}, r"unknown key 'find_unused_parameters'"),
])
def test_an_unknown_key_names_the_section_and_the_closest_key(cls, section, message):
    with pytest.raises(ConfigError, match=message):
        cls.from_config(section)


@pytest.mark.parametrize(("cls", "section", "message"), [
    (TrainSettings, {"max_epochs": "abc"},
     r"^train_cfg\.max_epochs must be an integer or None, got 'abc' \(str\)$"),
    (TrainSettings, {"max_epochs": 2.5},
     r"^train_cfg\.max_epochs must be an integer or None, got 2\.5"),
    (TrainSettings, {"val_interval": True}, r"^train_cfg\.val_interval must be an integer"),
    (TrainSettings, {"grad_clip": 35}, r"^train_cfg\.grad_clip must be a dict or None, got 35"),
    (TrainSettings, {"patience": "3"}, r"^train_cfg\.patience must be an integer or None"),
    (CheckpointSettings, {"save_best": 1}, r"^checkpoint\.save_best must be a string or None"),
    (LogSettings, {"tensorboard": "yes"}, r"^log\.tensorboard must be True or False, got 'yes'"),
    (LogSettings, {"vis_score_thr": "0.3"}, r"^log\.vis_score_thr must be a number"),
    (RuntimeSettings, {"sync_bn": "no"}, r"^sync_bn must be True or False, got 'no'"),
    (RuntimeSettings, {"amp": "fp16"}, r"^amp must be a dict or True or False or None"),
])
def test_a_wrong_type_is_one_line_naming_the_key_path_value_and_type(cls, section, message):
    with pytest.raises(ConfigError, match=message) as info:
        cls.from_config(section)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("cls", "section", "message"), [
    (TrainSettings, {"max_epochs": 0}, r"^train_cfg\.max_epochs must be an integer >= 1, got 0$"),
    (TrainSettings, {"val_interval": -1}, r"^train_cfg\.val_interval must be an integer >= 0"),
    (TrainSettings, {"accumulate_steps": 0},
     r"^train_cfg\.accumulate_steps must be an integer >= 1"),
    (TrainSettings, {"patience": 0}, r"^train_cfg\.patience must be an integer >= 1, got 0$"),
    (CheckpointSettings, {"interval": -2}, r"^checkpoint\.interval must be an integer >= 0"),
    (CheckpointSettings, {"max_keep": -1}, r"^checkpoint\.max_keep must be an integer >= 0"),
    (CheckpointSettings, {"rule": "more"}, r"^checkpoint\.rule must be 'greater' or 'less'"),
    (LogSettings, {"interval": 0}, r"^log\.interval must be an integer >= 1, got 0$"),
    (LogSettings, {"vis_score_thr": 1.5}, r"^log\.vis_score_thr must be a number in \[0, 1\]"),
])
def test_an_out_of_range_value_names_the_key_path_and_what_is_expected(cls, section, message):
    with pytest.raises(ConfigError, match=message):
        cls.from_config(section)


def test_settings_built_in_code_are_checked_and_a_name_changes_the_path():
    with pytest.raises(ConfigError, match=r"^train_cfg\.max_epochs must be an integer >= 1"):
        TrainSettings(max_epochs=0)
    with pytest.raises(ConfigError, match=r"^runner\.train\.max_epochs must be an integer"):
        TrainSettings.from_config({"max_epochs": "12"}, "runner.train")
    with pytest.raises(ConfigError, match=r"^train_cfg must be a dict, got 12"):
        TrainSettings.from_config(12)
    with pytest.raises(AttributeError):  # frozen
        TrainSettings().max_epochs = 3  # type: ignore[misc]


def test_the_config_keys_detbox_train_accepts_reach_the_trainer():
    cfg = ConfigDict(
        optimizer=ConfigDict(type="SGD", lr=0.02),
        lr_schedule=ConfigDict(policy="step", milestones=[8, 11]),
        train_cfg=ConfigDict(max_epochs=4, val_interval=2, accumulate_steps=2, patience=3,
                             grad_clip=ConfigDict(max_norm=10, norm_type=2)),
        checkpoint=ConfigDict(interval=2, max_keep=2, save_best="bbox_mAP", rule="greater",
                              max_keep_best=2),
        log=ConfigDict(interval=20, tensorboard=True, num_vis_images=2, vis_score_thr=0.5),
        amp=ConfigDict(dtype="bf16"), auto_scale_lr=ConfigDict(base_batch_size=16),
        sync_bn=True,
    )
    options = _trainer_options(cfg)
    assert options["train"] == TrainSettings(max_epochs=4, val_interval=2, accumulate_steps=2,
                                             patience=3, grad_clip={"max_norm": 10, "norm_type": 2})
    assert options["checkpoint"] == CheckpointSettings(interval=2, max_keep=2, save_best="bbox_mAP",
                                                       rule="greater", max_keep_best=2)
    assert options["log"] == LogSettings(interval=20, tensorboard=True, num_vis_images=2,
                                         vis_score_thr=0.5)
    assert options["runtime"] == RuntimeSettings(amp={"dtype": "bf16"}, sync_bn=True,
                                                 auto_scale_lr={"base_batch_size": 16})
    cfg.train_cfg.max_epochs = "abc"
    with pytest.raises(ConfigError,
                       match=r"^train_cfg\.max_epochs must be an integer or None, got 'abc'"):
        _trainer_options(cfg)
