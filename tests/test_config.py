import pytest
import yaml

from maskcycle.config import ConfigError, TrialConfig, defaults, parse_overrides


def test_defaults_are_the_reference_cyclegan():
    c = TrialConfig()
    assert (c.netG, c.netD, c.ngf, c.ndf, c.n_layers_D, c.norm) == ("resnet_9blocks", "basic", 64, 64, 3, "instance")
    assert (c.init_type, c.init_gain, c.gan_mode) == ("normal", 0.02, "lsgan")
    assert (c.lambda_A, c.lambda_B, c.lambda_identity, c.pool_size) == (10.0, 10.0, 0.5, 50)
    assert (c.optimizer, c.lr, c.beta1, c.beta2) == ("adam", 0.0002, 0.5, 0.999)
    assert (c.n_epochs, c.n_epochs_decay, c.load_size, c.crop_size) == (100, 100, 286, 256)
    assert (c.no_flip, c.batch_size) == (False, 1)
    assert c.lr_policy == "linear" and c.lr_step_at == "start"


def test_yaml_roundtrip_and_overrides(tmp_path):
    path = tmp_path / "t.yaml"
    TrialConfig(lr=0.001, norm="batch").to_yaml(path)
    c = TrialConfig.from_yaml(path, ["batch_size=4", "gan_mode=vanilla"])
    assert (c.lr, c.norm, c.batch_size, c.gan_mode) == (0.001, "batch", 4, "vanilla")
    assert TrialConfig.from_yaml(path, {"lambda_A": 5}).lambda_A == 5.0  # int accepted for a float


@pytest.mark.parametrize("values, words", [
    ({"learning_rate": 0.1}, ["unknown key", "learning_rate"]),
    ({"lr": "fast"}, ["'lr'", "'fast'", "float"]),
    ({"batch_size": 2.5}, ["'batch_size'", "2.5"]),
    ({"no_flip": 1}, ["'no_flip'", "bool"]),
    ({"lr": 0}, ["'lr'", "0", "> 0"]),
    ({"lr": -1e-4}, ["'lr'", "> 0"]),
    ({"crop_size": 300}, ["'crop_size'", "300", "load_size"]),
    ({"batch_size": 0}, ["'batch_size'", ">= 1"]),
    ({"norm": "layer"}, ["'norm'", "'layer'", "'instance'"]),
    ({"netG": "resnet_12blocks"}, ["'netG'", "resnet_12blocks"]),
    ({"beta1": 1.0}, ["'beta1'"]),
])
def test_bad_values_name_key_and_value(tmp_path, values, words):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(values))
    with pytest.raises(ConfigError) as err:
        TrialConfig.from_yaml(path)
    for word in words + [str(path)]:
        assert word in str(err.value)


def test_unreadable_and_non_mapping_yaml(tmp_path):
    with pytest.raises(ConfigError, match="missing.yaml"):
        TrialConfig.from_yaml(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        TrialConfig.from_yaml(tmp_path / "list.yaml")


def test_parse_overrides():
    assert parse_overrides(["lr=0.01", "norm=batch", "no_flip=true"]) == {"lr": 0.01, "norm": "batch", "no_flip": True}
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["lr"])


def test_defaults_dict_covers_every_field():
    assert defaults() == TrialConfig().to_dict()


def test_settings_flags_round_trip_through_argparse():
    """CLI flags come from the settings' fields; field_flags gives the flags back for a subprocess."""
    import argparse

    from maskcycle.config import add_field_arguments, field_flags, from_arguments
    from maskcycle.data.curate import CurationError, Settings

    parser = argparse.ArgumentParser()
    add_field_arguments(parser, Settings)
    assert from_arguments(Settings, parser.parse_args([])) == Settings()
    s = Settings(n_train=12, sharpness_min=2.5, require_face=True, placements=("correct", "chin_uncovered"))
    assert from_arguments(Settings, parser.parse_args(field_flags(s))) == s
    assert field_flags(Settings()) == []
    with pytest.raises(CurationError, match="n_train"):
        Settings(n_train=0)
    with pytest.raises(CurationError, match="placements"):
        Settings(placements=("sideways",))


def test_learning_rates_as_people_write_them_and_non_finite_values():
    assert TrialConfig.from_dict({"lr": "2e-4"}).lr == 2e-4  # YAML 1.1 reads 2e-4 as a string
    for bad in (float("nan"), float("inf"), "nan"):
        with pytest.raises(ConfigError, match="'lambda_A'"):
            TrialConfig.from_dict({"lambda_A": bad})


def test_a_params_file_states_only_what_it_changes_against_its_base(tmp_path):
    (tmp_path / "baseline.yaml").write_text("batch_size: 16\nnorm: instance\nlr: 2e-4\n")
    (tmp_path / "batch_4.yaml").write_text("base: baseline.yaml\nbatch_size: 4\n")
    cfg = TrialConfig.from_params(tmp_path / "batch_4.yaml", ["lr=0.001"])
    assert (cfg.name, cfg.batch_size, cfg.norm, cfg.lr) == ("batch_4", 4, "instance", 0.001)
    (tmp_path / "baseline.yaml").write_text("base: batch_4.yaml\n")
    with pytest.raises(ConfigError, match="key 'base'.*leads back to itself"):
        TrialConfig.from_params(tmp_path / "batch_4.yaml")


def test_every_study_variant_resolves_from_its_base():
    from maskcycle.config import PARAMS_DIR, read_settings_yaml

    for path in sorted(PARAMS_DIR.glob("*/*.yaml")):
        TrialConfig.from_params(path)  # validated
        if path.stem != "baseline":
            assert path.read_text().count("base: baseline.yaml") == 1, path
    assert read_settings_yaml(PARAMS_DIR / "study" / "batch_4.yaml")["norm"] == "instance"
