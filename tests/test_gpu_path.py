"""The GPU path, as far as a CPU can run it: torch.compile (inductor's CPU backend), bf16 autocast, DDP with
compile, checkpoints that cross between compiled, DDP-wrapped and eager models, and the trainer importing
without the data stack. What only a GPU can show is `benchmarks/gpu_check.py` (README, "GPU").

Tolerances (`benchmarks.gpu_check`, which applies the same ones). Compiled and eager float32 training differ only
by the order inductor sums in: measured 0 to 1e-7 relative over 8 tiny steps, and 1e-4 is allowed (a wrong graph
is off by far more). bf16 autocast rounds matmul inputs to 8 mantissa bits (2^-8 = 0.4% each): measured about
1e-4 nats from float32 over the first tiny steps, and 0.05 is allowed, room for GPT-2 124M's longer matmuls.
All compiled runs share the tiny shapes (micro batch 2 x 32 tokens), so after the first compilation inductor's
cache serves the rest.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.distributed as torch_dist
from torch.nn.parallel import DistributedDataParallel as DDP

from benchmarks.gpu_check import BF16_ATOL, COMPILE_RTOL, run_trainer
from model.sampling import sample_text
from tests.trainer_helpers import REPO_ROOT, step_losses, trainer_cmd, trainer_env
from tests.trainer_helpers import run_trainer as run_trainer_cmd
from trainer.checkpoint import load_checkpoint, load_model, save_checkpoint
from trainer.config import TrainConfig, build_config
from trainer.evaluate import text_loss
from trainer.hf import export_hf, from_pretrained

pytestmark = pytest.mark.usefixtures("one_thread")  # 2 OpenMP threads slow small ops 25-80x here (conftest)
STEPS = 8
RTOL = COMPILE_RTOL["float32"]


def tiny_config(data, out, **overrides) -> TrainConfig:
    """The settings of `tests.trainer_helpers.trainer_cmd` (the tiny preset, TINY_FLAGS) with no side files."""
    settings = dict(
        data=str(data), out=str(out), model="tiny", steps=STEPS, seq_len=32, micro_batch=2, batch_tokens=128,
        warmup=5, eval_tokens=256, sample_tokens=8, prompts=["The web is"], hf_export=False, tensorboard=False,
        compile=False,
    )  # fmt: skip
    return build_config({**settings, **overrides})


def close(a: list[float], b: list[float], rtol: float = RTOL) -> bool:
    """True when paired losses agree within `rtol` relative."""
    return len(a) == len(b) and all(abs(x - y) <= rtol * abs(x) for x, y in zip(a, b, strict=True))


def test_compiled_matches_eager_and_checkpoints_cross_between_them(trainer_shards, tmp_path):
    eager = run_trainer(tiny_config(trainer_shards, tmp_path / "eager"), STEPS, save_at=4, keep=True)
    compiled = run_trainer(tiny_config(trainer_shards, tmp_path / "c", compile=True), STEPS, save_at=4, keep=True)
    assert compiled.graphs > 0 and eager.graphs == 0  # dynamo captured the model: it did not fall back to eager
    assert close(eager.losses, compiled.losses), (eager.losses, compiled.losses)
    assert eager.losses[-1] < eager.losses[0]

    # A state dict taken from the compiled module itself has `_orig_mod.` keys (as other tools save them): write
    # the step-4 checkpoint with those keys.
    state = load_checkpoint(compiled.checkpoint)
    prefixed_weights = {f"_orig_mod.{k}": v for k, v in state["model"].items()}
    assert set(compiled.trainer.model.state_dict()) == set(prefixed_weights)
    prefixed = save_checkpoint(tmp_path / "prefixed", {**state, "model": prefixed_weights}, 1)

    # Resume: eager from the compiled (prefixed) checkpoint, compiled from the eager one.
    eager_from_compiled = run_trainer(tiny_config(trainer_shards, tmp_path / "r1"), STEPS, resume=prefixed)
    compiled_from_eager = run_trainer(
        tiny_config(trainer_shards, tmp_path / "r2", compile=True), STEPS, resume=eager.checkpoint
    )
    assert close(eager_from_compiled.losses, compiled.losses[4:])
    assert close(compiled_from_eager.losses, eager.losses[4:])

    # Sampling, evaluation and HF export of the compiled checkpoints load into the eager model.
    plain, from_prefixed = load_model(compiled.checkpoint), load_model(prefixed)
    assert sample_text(from_prefixed, "The web is", 1, 8, seed=3) == sample_text(plain, "The web is", 1, 8, seed=3)
    stream = np.fromfile(trainer_shards.parent / "val_000000.bin", dtype=np.uint16, offset=1024)[:600]
    assert text_loss(from_prefixed, stream, 32, "cpu") == text_loss(plain, stream, 32, "cpu")
    export_hf(torch.compile(from_prefixed), tmp_path / "hf")  # export from a compiled wrapper
    idx = torch.from_numpy(stream[:32].astype(np.int64))[None]
    assert torch.equal(from_pretrained(tmp_path / "hf")(idx)[0], plain(idx)[0])


@pytest.fixture
def gloo_group(tmp_path):
    """A one-process gloo group in this process, so that a real DDP wrapper can be built; destroyed after."""
    torch_dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield
    torch_dist.destroy_process_group()


def test_ddp_wrapped_state_loads_for_sampling_evaluation_export_and_resume(trainer_shards, tmp_path, gloo_group):
    ref = run_trainer(tiny_config(trainer_shards, tmp_path / "ref"), STEPS, save_at=4)
    first = run_trainer(tiny_config(trainer_shards, tmp_path / "first"), 4, keep=True)
    ddp = DDP(first.trainer.raw)
    state = {**first.trainer.state_dict(), "model": ddp.state_dict()}
    assert all(k.startswith("module.") for k in state["model"])
    path = save_checkpoint(tmp_path / "ddp", state, 1)

    resumed = run_trainer(tiny_config(trainer_shards, tmp_path / "resumed"), STEPS, resume=path)
    assert resumed.losses == ref.losses[4:]  # bit for bit, as an unwrapped checkpoint resumes

    plain = load_model(ref.checkpoint)
    loaded = load_model(path)
    assert sample_text(loaded, "The web is", 1, 8, seed=1) == sample_text(plain, "The web is", 1, 8, seed=1)
    stream = np.fromfile(trainer_shards.parent / "val_000000.bin", dtype=np.uint16, offset=1024)[:600]
    assert text_loss(loaded, stream, 32, "cpu") == text_loss(plain, stream, 32, "cpu")
    export_hf(ddp, tmp_path / "hf")  # export from the DDP wrapper
    idx = torch.from_numpy(stream[:32].astype(np.int64))[None]
    assert torch.equal(from_pretrained(tmp_path / "hf")(idx)[0], plain(idx)[0])


def test_bf16_autocast_on_cpu_stays_close_to_fp32(trainer_shards, tmp_path):
    steps = 4  # CPUs without bf16 instructions (AVX2 here) emulate it: a tiny step is about 10x slower than fp32
    fp32 = run_trainer(tiny_config(trainer_shards, tmp_path / "fp32"), steps)
    bf16 = run_trainer(tiny_config(trainer_shards, tmp_path / "bf16", dtype="bfloat16"), steps)
    gaps = [abs(a - b) for a, b in zip(fp32.losses, bf16.losses, strict=True)]
    assert max(gaps) <= BF16_ATOL, gaps
    assert max(gaps) > 0  # the autocast really ran in bf16
    assert bf16.losses[-1] < bf16.losses[0]


def test_two_process_ddp_with_compile_matches_one_process_and_resumes_eager(trainer_shards, tmp_path):
    ddp = tmp_path / "ddp"
    flags = ["--batch-tokens", "256", "--compile", "--ckpt-every", "4", "--nproc", "2"]  # 2 ranks x 2 micro steps
    run_trainer_cmd(trainer_cmd(trainer_shards, ddp, STEPS, *flags), timeout=600)
    losses = step_losses(ddp)
    assert sorted(losses) == list(range(1, STEPS + 1))
    single = run_trainer(tiny_config(trainer_shards, tmp_path / "single", batch_tokens=256), STEPS)  # 4 micro steps
    assert close(single.losses, [losses[s] for s in range(1, STEPS + 1)]), (single.losses, losses)

    # The DDP + compile run's step-4 checkpoint resumes in one eager process; its export and checkpoint load.
    cfg = tiny_config(trainer_shards, tmp_path / "resumed", batch_tokens=256)
    resumed = run_trainer(cfg, STEPS, resume=ddp / "checkpoints" / "step_000004.pt")
    assert close(resumed.losses, [losses[s] for s in range(5, STEPS + 1)])
    final = load_model(ddp / "checkpoints" / f"step_{STEPS:06d}.pt")
    idx = torch.arange(100, 132)[None]
    assert torch.equal(load_model(ddp)(idx)[0], final(idx)[0])  # the run folder's hf/ export


BLOCK_DATA_STACK = """
import importlib.abc, sys
BLOCKED = {"datatrove", "polars", "prefect", "pyarrow", "ray", "spacy", "trafilatura", "fasttext"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked: the device image has no data stack")
sys.meta_path.insert(0, Block())
"""


def run_python(code: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter from the repository root, one thread."""
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=trainer_env(), capture_output=True, text=True, timeout=timeout
    )


def test_model_and_trainer_train_without_the_data_stack(trainer_shards, tmp_path):
    code = BLOCK_DATA_STACK + textwrap.dedent(f"""
        import benchmarks.gpu_check, model.gpt2, model.sampling, trainer.checkpoint, trainer.hf, trainer.launch
        from trainer.config import build_config
        from trainer.train import train
        result = train(build_config(dict(data={str(trainer_shards)!r}, out={str(tmp_path / "run")!r}, model="tiny",
            steps=2, seq_len=32, micro_batch=2, batch_tokens=64, eval_tokens=64, sample_tokens=4, prompts=["Hi"])))
        assert result["status"] == "completed", result
        loaded = {{m.split(".")[0] for m in sys.modules}}
        needs = {{"pydantic", "yaml", "safetensors", "fsspec", "tiktoken", "typer"}}
        print("loaded:", " ".join(sorted(loaded & needs)))
    """)
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "loaded: fsspec pydantic safetensors tiktoken typer yaml" in proc.stdout  # what the device image needs
    assert (tmp_path / "run" / "hf" / "config.json").is_file()


def test_gpu_check_refuses_a_missing_gpu_or_package_in_one_line():
    no_gpu = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_check", "--device", "cuda", "--model", "gpt2"],
        cwd=REPO_ROOT, env=trainer_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert no_gpu.returncode == 2 and no_gpu.stdout == ""
    assert no_gpu.stderr == f"error: --device cuda: torch {torch.__version__} sees no CUDA GPU on this machine\n"
    code = "import sys; sys.modules['pydantic'] = None; from benchmarks.gpu_check import main; sys.exit(main())"
    no_pydantic = run_python(code)
    assert no_pydantic.returncode == 2
    assert no_pydantic.stderr.startswith("error: the trainer imports pydantic, which this Python lacks")
    assert no_pydantic.stderr.count("\n") == 1
