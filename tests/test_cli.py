"""The command line's promise for bad input: one literal, bounded error line on stderr, exit code 2,
nothing written, never a traceback."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from spectac.cli import app, info, one_line, user_errors
from spectac.io.dataset import Case, write_manifest, write_study
from spectac.io.paths import ensure_writable_parent
from spectac.splitting import parse_split
from spectac.training import TrainOptions, train_model
from spectac.volume import SpectacError, Volume

runner = CliRunner()


def _one_error_line(result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def _app_raising(exc: BaseException) -> typer.Typer:
    """A one-command app whose command raises ``exc`` through the CLI's error handling."""
    tiny = typer.Typer()

    @tiny.command()
    @user_errors
    def boom() -> None:
        raise exc

    @tiny.command()
    def other() -> None:  # a second command keeps "boom" a subcommand
        pass

    return tiny


def tiny_dataset(root: Path, patients: int = 1, shape=(8, 8, 8)) -> Path:
    cases = []
    for p in range(patients):
        case_id = f"p{p:02d}_rest"
        ac = Volume.centred(np.random.default_rng(p).random(shape).astype(np.float32) + 1, (6.8, 6.8, 6.8))
        write_study(root, case_id, {"nc": ac.with_array(ac.array / 2), "ac": ac})
        cases.append(Case(case_id, f"P{p:02d}", "rest", "F", bmi=24.0, split="train"))
    write_manifest(root, {"source": "test"}, cases)
    return root


# ---- 1. user text is printed literally, never as rich markup ---------------------------------------


def test_error_message_with_markup_is_printed_literally():
    result = runner.invoke(_app_raising(SpectacError("a [/] value and [red]x and [bold]y :smile:")), ["boom"])
    line = _one_error_line(result)
    assert line == "error: a [/] value and [red]x and [bold]y :smile:"


def test_cli_error_naming_a_path_with_brackets(tmp_path):
    out = tmp_path / "x[red]y[/]z.txt"  # normals refuses a name that is not .npz, before any work
    result = runner.invoke(app, ["normals", "--data", str(tmp_path), "--out", str(out)])
    assert _one_error_line(result) == f"error: {out}: a normal database is an .npz file"


def test_info_prints_paths_with_markup_literally(tmp_path, capsys):
    info("wrote /data/[/]odd[red]name :smile:")
    assert capsys.readouterr().err == "wrote /data/[/]odd[red]name :smile:\n"
    data = tiny_dataset(tmp_path / "data")
    out = tmp_path / "export [/] [red]nc"
    result = runner.invoke(app, ["export-dicom", "--data", str(data), "--out", str(out)])
    assert result.exit_code == 0, (result.output, result.exception)
    assert f"1 studies written as DICOM in {out}" in result.stderr
    assert (out / "nc" / "p00_rest").is_dir()


# ---- 2. error lines are one printable line of bounded length ---------------------------------------


def test_error_line_is_sanitised_and_capped():
    raw = "bad orientation " + "\x00\x01\x1b[31m\udcff" * 40_000 + "\nsecond line\r\tthird"
    result = runner.invoke(_app_raising(SpectacError(raw)), ["boom"])
    line = _one_error_line(result)
    assert len(line) <= len("error: ") + 500 and line.endswith("...")
    assert line.startswith("error: bad orientation \\x00\\x01\\x1b[31m\\udcff")
    assert all(c.isprintable() for c in line)
    assert one_line("a\nb\r\n  c\x07") == "a b c\\x07"


# ---- 3. unwritable outputs -------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["correct", "train", "import", "predict", "export-dicom", "simulate", "normals"])
def test_output_under_a_regular_file_is_refused_up_front(tmp_path, command):
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    data = tiny_dataset(tmp_path / "data")
    nii = tmp_path / "nc.nii.gz"
    from spectac.io.nifti import write_nifti

    write_nifti(Volume.centred(np.ones((8, 8, 8), np.float32), (6.8, 6.8, 6.8)), nii)
    out = blocker / "sub" / ("db.npz" if command == "normals" else "out.nii.gz" if command == "correct" else "out")
    args = {
        "correct": ["correct", str(nii), "-o", str(out), "--method", "nc"],
        "train": ["train", "--data", str(data), "--out", str(out), "--epochs", "1", "--channels", "2,4"],
        "import": ["import", "--nc", str(tmp_path), "--ac", str(tmp_path), "--out", str(out)],
        "predict": ["predict", "-m", "nc", "-d", str(data), "-o", str(out), "--split", "all"],
        "export-dicom": ["export-dicom", "-d", str(data), "-o", str(out)],
        "simulate": ["simulate", "--out", str(out), "--patients", "1"],
        "normals": ["normals", "--data", str(data), "--out", str(out)],
    }[command]
    line = _one_error_line(runner.invoke(app, args))
    assert line == f"error: {out}: cannot write (Not a directory)"
    assert blocker.read_text() == "not a folder"


def test_evaluate_refuses_a_run_folder_it_cannot_write(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    run = tmp_path / "run"
    run.mkdir()
    run.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        line = _one_error_line(runner.invoke(app, ["evaluate", "-d", str(tmp_path), "-r", str(run)]))
    finally:
        run.chmod(stat.S_IRWXU)
    assert line == f"error: {run}: cannot write (Permission denied)"


def test_ensure_writable_parent(tmp_path):
    assert ensure_writable_parent(tmp_path / "new" / "deeper" / "f.txt") == tmp_path / "new" / "deeper" / "f.txt"
    assert not (tmp_path / "new").exists()  # the probe leaves nothing behind
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "f").write_text("x")
    with pytest.raises(SpectacError, match=r"f/g: cannot write \(Not a directory\)"):
        ensure_writable_parent(tmp_path / "f" / "g")
    with pytest.raises(SpectacError, match=r"cannot write \(Not a directory\)"):
        ensure_writable_parent(tmp_path / "f", folder=True)
    with pytest.raises(SpectacError, match="cannot write"):
        ensure_writable_parent("/proc/spectac-test/out.nii.gz")
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
        try:
            with pytest.raises(SpectacError, match=r"cannot write \(Permission denied\)"):
                ensure_writable_parent(locked / "out.dcm")
        finally:
            locked.chmod(stat.S_IRWXU)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (PermissionError(13, "Permission denied", "/x/out.dcm"), "error: /x/out.dcm: cannot write (Permission denied)"),
        (NotADirectoryError(20, "Not a directory", "/f/out"), "error: /f/out: cannot write (Not a directory)"),
        (OSError(28, "No space left on device"), "error: cannot write (No space left on device)"),
        (OSError(18, "Invalid cross-device link", "/a/.tmp", None, "/b/[red]out"),
         "error: /b/[red]out: cannot write (Invalid cross-device link)"),
    ],
)
def test_os_errors_of_a_command_become_one_line(exc, expected):
    assert _one_error_line(runner.invoke(_app_raising(exc), ["boom"])) == expected


# ---- 4. train options are checked before anything is written --------------------------------------


@pytest.mark.parametrize(
    ("option", "match"),
    [
        (["--batch-size", "0"], "--batch-size"),
        (["--batch-size", "-1"], "--batch-size"),
        (["--lr", "nan"], "--lr"),
        (["--lr", "inf"], "--lr"),
        (["--lr", "0"], "--lr"),
        (["--lr", "-1e-3"], "--lr"),
        (["--seed", "-1"], "--seed"),
        (["--channels", "0,0"], "--channels"),
        (["--channels", "-8,16"], "--channels"),
        (["--channels", "8"], "--channels"),
        (["--channels", "8,,16"], "--channels"),
        (["--epochs", "0"], "--epochs"),
        (["--patience", "-1"], "--patience"),
        (["--init", "absent-weights.pt"], "--init absent-weights.pt: no weights there"),
    ],
)
def test_train_refuses_bad_options_before_writing(tmp_path, option, match):
    data = tiny_dataset(tmp_path / "data", patients=1)
    out = tmp_path / "model"
    line = _one_error_line(runner.invoke(app, ["train", "--model", "unet3d", "--data", str(data), "--out", str(out),
                                               *option]))
    assert match in line
    assert not out.exists()


@pytest.mark.parametrize("case", ["no dataset", "missing init weights"])
def test_train_refused_after_taking_the_folder_leaves_no_folder(tmp_path, case):
    """Refusals found once the model folder is locked (the dataset) remove the folder the run made;
    missing init weights are refused before it is made."""
    data = tiny_dataset(tmp_path / "data", patients=1)
    out = tmp_path / "model"
    args = (["--data", str(tmp_path / "absent")] if case == "no dataset"
            else ["--data", str(data), "--init", str(tmp_path / "absent.pt")])
    line = _one_error_line(runner.invoke(app, ["train", "--model", "unet3d", "--out", str(out), "--epochs", "1",
                                               *args]))
    assert "absent" in line
    assert not out.exists()


@pytest.mark.parametrize(
    ("option", "match"),
    [
        (["--model", "resnet", "--channels", "4,8"], "model resnet has no option channels"),
        (["--model", "resnet", "--net", "channels=4,8"], "model resnet has no option channels"),
        (["--net", "depth=3"], "model unet3d has no option depth"),
        (["--net", "channels"], "--net expects key=value"),
        (["--net", "channels=4,8", "--channels", "4,8"], "--channels and --net channels"),
        (["--net", "channels=4,8", "--net", "channels=4"], "--net channels given twice"),
        (["--net", "channels=4,x"], "channels must be a list of numbers"),
        (["--net", "norm=3"], "norm must be a string"),
        (["--net", "prior=ct"], "unknown network prior"),
    ],
)
def test_train_refuses_network_options_the_model_does_not_have(tmp_path, option, match):
    data = tiny_dataset(tmp_path / "data", patients=1)
    out = tmp_path / "model"
    line = _one_error_line(runner.invoke(app, ["train", "--model", "unet3d", "--data", str(data), "--out", str(out),
                                               *option]))
    assert match in line
    assert not out.exists()


def test_train_passes_net_options_to_the_network(tmp_path, monkeypatch):
    import spectac.training

    seen = {}

    def fake_train(data, out, model, options, network, **kwargs):
        seen.update(model=model, network=network)
        return {"epochs_run": 0, "last_epoch": 1, "best_epoch": 1}

    monkeypatch.setattr(spectac.training, "train_model", fake_train)
    result = runner.invoke(app, ["train", "--model", "unet-gan3d", "--data", str(tmp_path), "--out",
                                 str(tmp_path / "m"), "--net", "channels=4,8", "--net", "lambda-l1=10",
                                 "--prior", "chang"])
    assert result.exit_code == 0, result.output
    assert seen == {"model": "unet-gan3d", "network": {"channels": [4, 8], "lambda_l1": 10, "prior": "chang"}}


def test_help_lists_every_model_and_method():
    """The names in the help come from the tables: a new network needs no edit of the CLI."""
    from spectac.correction.methods import METHODS
    from spectac.nn.registry import REGISTRY

    group = typer.main.get_command(app)

    def help_of(command: str, option: str) -> str:
        return next(p.help for p in group.commands[command].params if option in p.opts)  # type: ignore[attr-defined]

    assert all(name in help_of("train", "--model") for name in REGISTRY)
    for name, spec in REGISTRY.items():
        assert all(option in help_of("train", "--net") for option in spec.defaults), name
    for command in ("predict", "correct"):
        assert all(name in help_of(command, "--method") for name in METHODS), command


@pytest.mark.parametrize(
    ("options", "network"),
    [
        (TrainOptions(batch_size=0), None),
        (TrainOptions(lr=float("nan")), None),
        (TrainOptions(epochs=0), None),
        (TrainOptions(seed=-3), None),
        (TrainOptions(patience=-1), None),
        (TrainOptions(), {"channels": [4, 0]}),
        (TrainOptions(), {"channels": []}),
    ],
)
def test_train_model_refuses_bad_options_before_writing(tmp_path, options, network):
    data = tiny_dataset(tmp_path / "data", patients=1)
    with pytest.raises(SpectacError):
        train_model(data, tmp_path / "model", "unet3d", options, network)
    assert not (tmp_path / "model").exists()


# ---- 5. split proportions --------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["nan/1/1", "1/nan/1", "inf/1/1", "1e308/1e308/1", "1/1", "1/1/1/1", "-1/1/1",
                                  "0/0/0", "a/b/c", ""])
def test_parse_split_refuses_bad_proportions(text):
    with pytest.raises(SpectacError, match="--split"):
        parse_split(text)


def test_parse_split_normalises():
    assert parse_split("40/40/20") == pytest.approx((0.4, 0.4, 0.2))
    assert parse_split("0/0/1") == (0.0, 0.0, 1.0)


@pytest.mark.parametrize("command", ["simulate", "import"])
def test_simulate_and_import_refuse_a_nan_split(tmp_path, command):
    out = tmp_path / "out"
    args = (["simulate", "--out", str(out), "--patients", "1"] if command == "simulate"
            else ["import", "--nc", str(tmp_path / "nc"), "--ac", str(tmp_path / "ac"), "--out", str(out)])
    (tmp_path / "nc").mkdir()
    (tmp_path / "ac").mkdir()
    line = _one_error_line(runner.invoke(app, [*args, "--split", "nan/1/1"]))
    assert "--split" in line and "nan/1/1" in line
    assert not out.exists()
