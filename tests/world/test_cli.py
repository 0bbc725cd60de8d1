"""``clbench world``: show writes a picture, zeroshot reports every task, bad input is one line and exit 2."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from tests.cli_runner import invoke


def test_show_writes_a_png(capsys, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "world.png"
    result = invoke(capsys, "world", "show", "--out", str(out), "--n", "8", "--novel")
    assert result.returncode == 0, result.stderr
    with Image.open(out) as img:
        assert img.size[0] > 6 * 128


def test_zeroshot_reports_every_task(capsys) -> None:  # noqa: ANN001
    result = invoke(capsys, "world", "zeroshot", "--per-class", "3")
    assert result.returncode == 0, result.stderr
    for name in ("shape", "colour", "texture", "count", "position", "size", "letters", "digits"):
        assert f"  {name} " in result.stdout


def test_bad_input_is_one_line(capsys, tmp_path: Path) -> None:  # noqa: ANN001
    for args in (("world", "show", "--out", str(tmp_path / "x.txt")),
                 ("world", "zeroshot", "--pretrained", str(tmp_path / "missing.safetensors")),
                 ("world", "pretrain", "--steps", "0", "--out", str(tmp_path / "w.safetensors"))):
        result = invoke(capsys, *args)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, (args, result.stderr)
