"""The command line's answers to a user's mistakes: a message and an exit status (2 usage, 3 bad input data,
4 runtime failure), never a traceback, and always before any model is loaded or any step is sampled."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
from PIL import Image

from glide_studio import cli, cli_run


def glide_studio(*args, env=None, code=None):
    """The installed entry point as its own process (or `code` run in one): (status, stdout, stderr)."""
    environment = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", **(env or {})}
    command = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "glide_studio", *args]
    done = subprocess.run(command, capture_output=True, env=environment, timeout=300)
    return done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")


@pytest.fixture
def files(tmp_path):
    picture = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(picture).save(tmp_path / "picture.png")
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    Image.fromarray(np.full((64, 64), 102, np.uint8)).save(tmp_path / "grey.png")  # a flat 40 % grey
    header = struct.pack(">IIBBBBB", 15000, 15000, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    (tmp_path / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                                        + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))
    return tmp_path


def test_help_documents_the_exit_statuses():
    status, out, _ = glide_studio("--help")
    assert status == 0
    assert "exit status:" in out
    for line in ("2    usage error", "3    bad input data", "4    runtime failure"):
        assert line in out
    status, out, _ = glide_studio("inpaint", "--help")
    assert status == 0 and "3    bad input data" in out and "--max-megapixels" in out


@pytest.mark.parametrize(("args", "status", "message"), [
    (["generate", "--prompt", b"caf\xe9 au lait", "-o", "{dir}/out.png"], 2,
     "--prompt: is not valid UTF-8 text (byte 0xe9 at position 3)"),
    (["generate", "--prompt", "x", "--device", "cuda", "-o", "{dir}/out.png"], 4, "--device cuda: "),
    (["inpaint", "--image", "{dir}/bomb.png", "--mask", "{dir}/mask.png", "-o", "{dir}/out.png"], 3,
     "the image is 225.0 megapixels, over the limit of 89.5 megapixels"),
    (["download", "demo-base-inpaint", "--timeout", "nan"], 2, "--timeout must be a finite number"),
], ids=["not-utf8", "no-cuda", "bomb", "nan-timeout"])
def test_user_errors_end_the_process_with_a_status_and_no_traceback(files, args, status, message):
    args = [arg.replace("{dir}", str(files)) if isinstance(arg, str) else arg for arg in args]
    code, _, err = glide_studio(*args, "--quiet")
    assert code == status, err
    assert message in err and "Traceback" not in err
    assert not (files / "out.png").exists()
    if "--device cuda" in message:  # CUDA_VISIBLE_DEVICES is empty: a CUDA build sees no GPU either
        assert "this torch is built without CUDA; use --device cpu" in err or "no CUDA GPU is visible" in err


def test_out_of_memory_is_a_runtime_failure_that_says_what_to_reduce(tmp_path):
    # The allocator's failure injected into the real command's process, where torch raises it while sampling.
    code = textwrap.dedent("""
        import sys
        from glide_studio import cli
        from glide_studio.runs import models, streams

        def run(models, request, resume=None):
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: "
                               "you tried to allocate 4294967296 bytes.")
            yield

        models.load_model_set = lambda request, device, precision: None
        streams.run = run
        sys.exit(cli.main(sys.argv[1:]))
    """)
    status, _, err = glide_studio("generate", "--prompt", "x", "--candidates", "4", "-q", "-o",
                                  str(tmp_path / "o.png"), code=code)
    assert status == cli.EXIT_RUNTIME, err
    assert "out of memory on cpu: [enforce fail" in err and "not enough memory" in err
    assert "try fewer candidates (--candidates, now 4)" in err and "Traceback" not in err


def test_out_of_memory_on_cuda_frees_the_cache_first(monkeypatch):
    import torch

    from glide_studio.pipelines.request import EditBox, Mode, Request
    from glide_studio.runs.errors import OutOfMemoryError, is_out_of_memory

    freed = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: freed.append(True))
    error = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    assert is_out_of_memory(error) and is_out_of_memory(MemoryError()) and not is_out_of_memory(RuntimeError("no"))
    request = Request(mode=Mode.INPAINT, batch=8, edit_box=EditBox(0, 0, 1024, 768))
    answer = cli_run.out_of_memory(error, "cuda:0", request)
    assert isinstance(answer, OutOfMemoryError) and freed == [True]
    assert str(answer).startswith("out of memory on cuda:0 (the CUDA cache was freed): CUDA out of memory.")
    for advice in ("--candidates, now 8", "--box, now 1024x768", "--precision fp16", "--device cpu"):
        assert advice in str(answer)


def test_memory_error_while_loading_is_reported_too(tmp_path, monkeypatch, capsys):
    from glide_studio.runs import models

    def load(request, device, precision):
        raise MemoryError

    monkeypatch.setattr(models, "load_model_set", load)
    assert cli.main(["generate", "--prompt", "x", "-q", "-o", str(tmp_path / "o.png")]) == cli.EXIT_RUNTIME
    assert "out of memory on cpu: MemoryError; try closing other programs" in capsys.readouterr().err


def status_of(argv: list[str]) -> int:
    """What `glide-studio ARGV` exits with: main's status, or argparse's own exit."""
    try:
        return cli.main(argv)
    except SystemExit as exit_info:
        return exit_info.code


@pytest.mark.parametrize(("args", "message"), [
    (["--device", "tpu"], "unknown device 'tpu': use cpu, cuda, cuda:N (the N-th GPU) or mps"),
    (["--seed", "2147483648"], "--seed: the value must be from 0 to 2147483647, got 2147483648 (or -1 for a random"),
    (["--guidance-scale", "-5"], "--guidance-scale: the value must be from 0 to 100, got -5.0"),
    (["--guidance-scale", "1e30"], "--guidance-scale: the value must be from 0 to 100, got 1e+30"),
    (["--guidance-scale", "nan"], "--guidance-scale: the value must be from 0 to 100, got nan"),
    (["--model", "demo-upsample-inpaint"], "--model demo-upsample-inpaint is an upsampler"),
    (["--upsample-model", "demo-base-inpaint"], "--upsample-model demo-base-inpaint is a base model, not an upsampler"),
    (["--model", "no-such-model"], "--model: unknown checkpoint 'no-such-model'; known checkpoints: "),
    (["--eta", "0.5"], "--eta has no effect on this generate run with its settings: leave it out"),
    (["--strength", "0.3"], "--strength has no effect on this generate run with its settings; it applies to sdedit"),
    (["--max-megapixels", "-1"], "--max-megapixels must be a positive number, got '-1'"),
], ids=lambda value: value if isinstance(value, str) and value.startswith("-") else None)
def test_usage_errors_are_refused_before_any_model_loads(tmp_path, fake_models, capsys, args, message):
    assert status_of(["generate", "--prompt", "x", *args, "-q", "-o", str(tmp_path / "o.png")]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert fake_models == [] and not (tmp_path / "o.png").exists()


def test_strength_given_to_inpaint_is_refused_and_a_soft_mask_says_how_it_reads(files, fake_models, capsys):
    base = ["inpaint", "--image", str(files / "picture.png"), "--prompt", "x", "-o", str(files / "o.png")]
    assert cli.main([*base, "--mask", str(files / "mask.png"), "--strength", "0.3", "-q"]) == cli.EXIT_USAGE
    assert "--strength has no effect on this inpaint run with its settings; it applies to sdedit" in \
        capsys.readouterr().err
    assert cli.main([*base, "--mask", str(files / "grey.png")]) == cli.EXIT_INPUT
    assert "the mask paints nothing: its brightest pixel is 40% and only pixels of 50% or more count" in \
        capsys.readouterr().err
    soft = np.zeros((64, 64), np.uint8)
    soft[16:48, 16:48] = 200
    soft[16:48, 8:16] = 60
    Image.fromarray(soft).save(files / "soft.png")
    assert cli.main([*base, "--mask", str(files / "soft.png")]) == 0
    assert "soft.png: 31% of the mask is grey (soft); pixels of 50% or more are regenerated" in \
        capsys.readouterr().err
    assert fake_models  # that one ran


def test_a_prompt_from_a_png_that_is_not_text_is_refused_before_sampling(tmp_path, fake_models, capsys):
    import json

    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    record = {"format": 2, "request": {"mode": "generate", "prompt": "caf\udce9"}, "context": {"device": "cpu"}}
    info.add_itxt("glide_studio", json.dumps(record), zip=True)  # "\udce9" escapes to a lone surrogate
    Image.new("RGB", (4, 4)).save(tmp_path / "odd.png", pnginfo=info)
    status = cli.main(["repeat", str(tmp_path / "odd.png"), "-q", "-o", str(tmp_path / "o.png")])
    assert status == cli.EXIT_INPUT
    assert "the prompt is not valid UTF-8 text" in capsys.readouterr().err and fake_models == []


def test_a_negative_timeout_is_a_usage_error(capsys):
    assert status_of(["download", "demo-base-inpaint", "--timeout", "-3"]) == cli.EXIT_USAGE
    assert "--timeout must be a positive number of seconds, got -3" in capsys.readouterr().err


def test_a_bug_keeps_its_traceback(tmp_path, monkeypatch):
    from glide_studio.runs import models

    def broken(request, device, precision):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(models, "load_model_set", broken)
    with pytest.raises(ZeroDivisionError):
        cli.main(["generate", "--prompt", "x", "-q", "-o", str(tmp_path / "o.png")])


@pytest.mark.parametrize(("changes", "message"), [
    ({"guidance_scale": -5.0}, "guidance_scale must be a finite number from 0 to 100, got -5.0"),
    ({"guidance_scale": 1e30}, "guidance_scale must be a finite number from 0 to 100, got 1e+30"),
    ({"guidance_scale": float("nan")}, "guidance_scale must be a finite number from 0 to 100, got nan"),
    ({"seed": 2**31}, "seed must be a whole number from 0 to 2147483647, got 2147483648"),
])
def test_a_request_out_of_range_is_refused_by_any_front_with_its_range(changes, message):
    """What the GUI, a script or a project hands the pipelines is checked by the same metadata ranges."""
    from glide_studio.pipelines.request import Request, RequestError

    with pytest.raises(RequestError, match=re.escape(message)):
        Request(**changes).check()


def test_pillows_own_bomb_refusal_is_bad_input_data():
    assert cli.exit_status(Image.DecompressionBombError("Image size (225000000 pixels) exceeds limit")) == 3
