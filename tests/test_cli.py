"""Every bad input gets one line on stderr and exit code 2, never a traceback."""

import time

import pytest

from tests.cli_runner import invoke, run_cli


def assert_one_line_error(out, *needles):
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0, out.stderr
    for needle in needles:
        assert needle in out.stderr, out.stderr


def test_unknown_method_suggests_and_lists(capsys):
    out = invoke(capsys, "run", "--methods", "finetun", "--benchmark", "smoke")
    assert_one_line_error(out, "unknown method 'finetun'", "did you mean 'finetune'", "zeroshot")


def test_unknown_benchmark_suggests_and_lists(capsys):
    out = invoke(capsys, "run", "--methods", "finetune", "--benchmark", "smok")
    assert_one_line_error(out, "unknown benchmark 'smok'", "did you mean 'smoke'")


def test_unknown_config_key_lists_valid_keys(capsys):
    out = invoke(capsys, "run", "--methods", "finetune", "--benchmark", "smoke", "--set", "train.lrr=1")
    assert_one_line_error(out, "unknown config key train.lrr", "valid keys:", "lr")


def test_unknown_method_key_lists_valid_keys(capsys):
    out = invoke(capsys, "run", "--methods", "finetune", "--benchmark", "smoke", "--set", "method.alpha=1")
    assert_one_line_error(out, "unknown config key method.alpha", "valid keys:")


def test_bad_value_type(capsys):
    out = invoke(capsys, "run", "--methods", "finetune", "--benchmark", "smoke", "--set", "train.batch_size=big")
    assert_one_line_error(out, "train.batch_size expects int")


def test_malformed_yaml_names_file_and_line(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: 1e-4\n  batch_size: [64\n")
    out = invoke(capsys, "run", "--methods", "finetune", "--benchmark", "smoke", "--config", str(bad))
    assert_one_line_error(out, "malformed YAML", f"{bad}:")


def test_unknown_section_in_config_file(capsys, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("trian:\n  lr: 1\n")
    out = invoke(capsys, "run", "--methods", "finetune", "--benchmark", "smoke", "--config", str(cfg))
    assert_one_line_error(out, "unknown config section 'trian'")


def test_missing_weights_fail_at_once(tmp_path):
    from clbench.errors import MissingResourceError
    from clbench.models import check_model

    check_model("clbench-tiny", None)  # registers configs, imports open_clip: not part of the timing
    start = time.monotonic()
    with pytest.raises(MissingResourceError):
        check_model("ViT-B-16", "openai")
    assert time.monotonic() - start < 3, "must not wait for hub retries"

    out = run_cli("run", "--methods", "zeroshot", "--benchmark", "smoke", "--model", "ViT-B-16",
                  "--pretrained", "openai", "--out", str(tmp_path))
    assert_one_line_error(out, "ViT-B-16", "openai", "not on this machine")
    assert not any(tmp_path.rglob("matrix.json")), "nothing is written for a run that cannot start"


@pytest.mark.parametrize("args,needle", [
    (("--pretrained", "/nonexistent/weights.safetensors"), "does not exist"),
    (("--model", "hf-hub:someone/NoSuchCLIP", "--pretrained", ""), "hf-hub:someone/NoSuchCLIP"),
    (("--model", "ViT-Q-99"), "unknown model 'ViT-Q-99'"),
])
def test_missing_or_unknown_models(capsys, tmp_path, args, needle):
    out = invoke(capsys, "run", "--methods", "zeroshot", "--benchmark", "smoke", *args, "--out", str(tmp_path))
    assert_one_line_error(out, needle)


def test_bad_seeds_and_missing_argument(capsys):
    assert_one_line_error(invoke(capsys, "run", "--methods", "finetune", "--benchmark", "smoke", "--seeds", "a,b"), "--seeds")
    assert_one_line_error(invoke(capsys, "run", "--benchmark", "smoke"), "--methods")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_bad_device(capsys):
    out = invoke(capsys, "run", "--methods", "zeroshot", "--benchmark", "smoke", "--device", "cuda")
    assert_one_line_error(out, "no CUDA device")


def test_list_commands(capsys):
    methods = invoke(capsys, "list", "methods")
    assert methods.returncode == 0
    line = next(ln for ln in methods.stdout.splitlines() if ln.startswith("finetune"))
    assert "ZSCL" in line
    benches = invoke(capsys, "list", "benchmarks")
    assert benches.returncode == 0 and any(ln.startswith("smoke") for ln in benches.stdout.splitlines())
