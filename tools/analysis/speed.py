"""Side-by-side speed of this project's PoolFormer and its peers (timm, mmpretrain).

Every model gets the same weights (ours, randomised, converted to each layout)
and the same input; each figure is the median of several timed repetitions
after warm-up. ``benchmark.py`` of this folder is the command-line front.
"""
import contextlib
import copy
import functools
import importlib
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import torch
from complexity import count_macs
from model_inputs import dense_batch, randomize_

from mmpoolformer.apis import build_model, init_model, load_config
from mmpoolformer.checkpoint import convert_from_mmpoolformer
from mmpoolformer.engine import cpu_has_native_bf16
from mmpoolformer.models.backbones.deploy import switch_to_deploy
from mmpoolformer.utils.tensor_forward import TensorForward

CL = torch.channels_last
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class Row:
    name: str
    img_per_s: float
    ratio: float = 1.0           # ours (default eval path) / this row, filled in later
    max_abs_diff: Optional[float] = None
    peak_fraction: Optional[float] = None
    note: str = ''
    times_s: list[float] = field(default_factory=list)
    peak_memory_mib: Optional[float] = None  # CUDA: torch.cuda.max_memory_allocated
    batch: Optional[int] = None  # images per step, where it is not the run's --batch
    # seconds per part of an iteration (IterTimeBreakdownHook), for the real training loop
    breakdown: Optional[dict] = None


def time_call(fn: Callable, warmup: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def time_round_robin(calls: dict, warmup: int, repeats: int, log=print) -> dict:
    """{name: timings} for {name: callable}: each warmed up, then one timed call
    of each per repetition in turn, so that a passing load on the machine hits
    every path alike instead of skewing one of them."""
    for name, fn in calls.items():
        log(f'warming up {name} ...')
        time_call(fn, warmup, 0)
    times = {name: [] for name in calls}
    for rep in range(repeats):
        log(f'repetition {rep + 1}/{repeats}')
        for name, fn in calls.items():
            times[name] += time_call(fn, 0, 1)
    return times


def synchronized(fn: Callable, device='cpu') -> Callable:
    """``fn`` that returns only when the device has finished its work (CUDA runs
    asynchronously: without this a timer measures the launch)."""
    if torch.device(device).type != 'cuda':
        return fn

    def run(*args, **kwargs):
        out = fn(*args, **kwargs)
        torch.cuda.synchronize()
        return out
    return run


def matmul_peak_gflops(repeats: int = 5, device='cpu') -> float:
    """The machine's FP32 matmul rate: the best of square GEMMs (torch.mm) and
    the GEMMs of PoolFormer's MLPs as 1x1 convolutions (oneDNN on the CPU;
    batch 16, each stage's width and 224x224 token grid), each the fastest of
    ``repeats``."""
    best = 0.0
    with torch.inference_mode():
        for n in (2048, 4096):
            a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
            t = min(time_call(synchronized(lambda a=a, b=b: a @ b, device), 1, repeats))
            best = max(best, 2 * n ** 3 / t / 1e9)
        for dim, side in ((64, 56), (128, 28), (320, 14), (512, 7)):
            x = torch.randn(16, dim, side, side, device=device).contiguous(memory_format=CL)
            conv = torch.nn.Conv2d(dim, 4 * dim, 1, bias=False).to(device)
            t = min(time_call(synchronized(lambda conv=conv, x=x: conv(x), device), 1, repeats))
            best = max(best, 2 * 16 * side * side * dim * 4 * dim / t / 1e9)
    return best


# --------------------------------------------------------------------------- #
# Models with shared weights
# --------------------------------------------------------------------------- #
def build_models(arch: str, seed: int = 0):
    """(ours classifier, mmpretrain classifier, timm model), same weights."""
    import timm

    # No stochastic depth: timm's and mmpretrain's models are built without it,
    # and training steps are compared.
    ours = build_model(f'mmpoolformer::classification/poolformer_{arch}_in1k.py',
                       {'model.backbone.drop_path_rate': 0.0}).eval()
    randomize_(ours, seed, std=0.02)
    state = ours.state_dict()
    mmpretrain = build_model(f'mmpretrain::poolformer/poolformer-{arch}_32xb128_in1k.py').eval()
    mmpretrain.load_state_dict(convert_from_mmpoolformer(state, 'mmpretrain'), strict=False)
    reference = timm.create_model(f'poolformer_{arch}').eval()
    reference.load_state_dict(convert_from_mmpoolformer(state, 'timm'))
    return ours, mmpretrain, reference


def _last_stage_features(model) -> Callable:
    """Stage-4 features before any norm: timm's head normalises after pooling,
    so only these (not logits) are comparable with timm."""
    if hasattr(model, 'forward_features'):
        return model.forward_features
    captured = {}
    model.backbone.stages[-1].register_forward_hook(
        lambda m, i, o: captured.__setitem__('x', o))

    def run(x):
        model(x, mode='tensor')
        return captured['x']
    return run



def cpu_vector_flags() -> str:
    """The CPU's vector extensions that decide which kernels run (AVX2, AVX-512, bf16,
    AMX), as torch detects them: every table is printed with them, as machines differ."""
    caps = torch.cpu.get_capabilities()
    return ' '.join(sorted(k for k, v in caps.items() if v is True and k.startswith(
        ('avx', 'amx')))) or 'no AVX'

# --------------------------------------------------------------------------- #
# Inference
# --------------------------------------------------------------------------- #
def inference_rows(arch='s12', batch=16, res=224, warmup=2, repeats=7,
                   compile_models=False, bf16=False, log=print, device='cpu',
                   fp16=False, onnxruntime=False) -> list[Row]:
    ours, mmpretrain, reference = (m.to(device) for m in build_models(arch))
    x = torch.randn(batch, 3, res, res, generator=torch.Generator().manual_seed(1)).to(device)
    macs = count_macs(ours, (res, res))
    nchw = copy.deepcopy(ours)
    nchw.backbone.channels_last_eval = False
    deployed = copy.deepcopy(ours)
    switch_to_deploy(deployed.backbone)
    timm_cl = copy.deepcopy(reference).to(memory_format=CL)

    # (name, callable returning the compared output, input, kind of output)
    candidates = [
        ('ours: default eval (channels_last)', TensorForward(ours), x, 'logits'),
        ('ours: deploy (folded)', TensorForward(deployed), x, 'logits'),
        ('ours: NCHW eager', TensorForward(nchw), x, 'logits'),
        ('mmpretrain PoolFormer: NCHW eager', TensorForward(mmpretrain), x, 'logits'),
        ('timm: NCHW eager', reference.forward_features, x, 'features'),
        ('timm: channels_last eager', timm_cl.forward_features,
         x.contiguous(memory_format=CL), 'features'),
    ]
    if compile_models:
        compiled_default = torch.compile(copy.deepcopy(ours).backbone)
        candidates.append(('ours: default + torch.compile', lambda t: compiled_default(t)[-1],
                           x, 'backbone'))
        compiled = torch.compile(deployed.backbone)
        candidates.append(('ours: deploy + torch.compile', lambda t: compiled(t)[-1], x,
                           'backbone'))
        timm_compiled = torch.compile(timm_cl.forward_features)
        candidates.append(('timm: channels_last + torch.compile', timm_compiled,
                           x.contiguous(memory_format=CL), 'features'))
    if torch.device(device).type == 'cuda':  # channels_last is not the default there
        candidates.insert(1, ('ours: channels_last (model and input)', TensorForward(
            copy.deepcopy(ours).to(memory_format=CL)), x.contiguous(memory_format=CL), 'logits'))
    for dtype, name, wanted in ((torch.bfloat16, 'bf16', bf16), (torch.float16, 'fp16', fp16)):
        if not wanted:
            continue
        xh = x.to(dtype)
        candidates += [
            (f'ours: default eval, {name}', TensorForward(copy.deepcopy(ours).to(dtype)), xh,
             'logits'),
            (f'ours: deploy, {name}', TensorForward(copy.deepcopy(deployed).to(dtype)), xh,
             'logits'),
        ]
        if torch.device(device).type == 'cuda':  # on a GPU the peers run in half precision too
            candidates += [
                (f'mmpretrain PoolFormer: {name}',
                 TensorForward(copy.deepcopy(mmpretrain).to(dtype)), xh, 'logits'),
                (f'timm: channels_last, {name}', copy.deepcopy(timm_cl).to(dtype).forward_features,
                 xh.contiguous(memory_format=CL), 'features'),
            ]

    if onnxruntime:
        candidates += onnxruntime_candidates(ours, x, log)

    with torch.inference_mode():
        expected = {'logits': nchw(x, mode='tensor'),
                    'features': _last_stage_features(copy.deepcopy(nchw))(x),
                    'backbone': nchw.backbone(x)[-1]}
    peak = matmul_peak_gflops(device=device)
    log(f'FP32 matmul peak measured: {peak:.0f} GFLOP/s')
    with torch.inference_mode():
        outputs = {name: fn(inp) for name, fn, inp, _ in candidates}
        times = time_round_robin(
            {name: synchronized(functools.partial(fn, inp), device)
             for name, fn, inp, _ in candidates}, warmup, repeats, log)
    rows = []
    for name, _, _, kind in candidates:
        img_s = batch / statistics.median(times[name])
        diff = (outputs[name].float() - expected[kind]).abs().max().item()
        rows.append(Row(name, img_s, max_abs_diff=diff, times_s=times[name],
                        peak_fraction=2 * macs * img_s / 1e9 / peak,
                        note='stage-4 features' if kind != 'logits' else 'logits'))
    reference_speed = rows[0].img_per_s
    for row in rows:
        row.ratio = reference_speed / row.img_per_s
    return rows


def onnxruntime_candidates(model, x: torch.Tensor, log=print) -> list:
    """Inference rows of ONNX Runtime (CPU, fp32, as many threads as torch) on
    our classifier exported by ``mmpoolformer.deployment`` (dynamic batch), with
    all of its graph optimisations and with none."""
    import tempfile

    import onnxruntime as ort

    from mmpoolformer.deployment import export_onnx
    path = tempfile.mkstemp(suffix='.onnx')[1]
    export_onnx(model, path, shape=x.shape[2:], log=log)
    candidates = []
    for level in ('ORT_ENABLE_ALL', 'ORT_DISABLE_ALL'):
        options = ort.SessionOptions()
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        options.intra_op_num_threads = torch.get_num_threads()
        session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])

        def run(t, session=session):
            return torch.from_numpy(session.run(None, {'image': t.numpy()})[0])
        candidates.append((f'ONNX Runtime {ort.__version__}: fp32, {level}', run, x, 'logits'))
    os.remove(path)
    return candidates


# --------------------------------------------------------------------------- #
# Training step (forward + backward + optimizer)
# --------------------------------------------------------------------------- #
def _in_layout(model, x, channels_last: bool, device='cpu'):
    """A training copy of ``model`` and ``x``, both in channels_last or both NCHW."""
    model = copy.deepcopy(model).to(device).train()
    if hasattr(model, 'backbone'):  # ours converts the input itself unless told not to
        model.backbone.channels_last_train = channels_last
    if not channels_last:
        return model, x
    return model.to(memory_format=CL), x.contiguous(memory_format=CL)


def training_rows(arch='s12', batch=16, res=224, warmup=1, repeats=5, log=print,
                  bf16=False, device='cpu') -> list[Row]:
    """Train steps (forward, loss, backward, AdamW) of ours and timm's, NCHW and
    channels_last; with ``bf16``, ours under ``--amp`` (CPU: bf16 autocast; CUDA:
    fp16 with loss scaling, as AmpOptimWrapper). On CUDA each row also gets its peak
    memory (``max_memory_allocated`` over one step)."""
    ours, _, reference = build_models(arch)
    x = torch.randn(batch, 3, res, res, device=device)
    labels = torch.randint(0, 1000, (batch, ), device=device)
    steps = {}
    for name, model, logits, channels_last in [
            ('ours: train step NCHW', ours, lambda m, t: m(t, mode='tensor'), False),
            ('timm: train step NCHW', reference, lambda m, t: m(t), False),
            ('ours: train step channels_last', ours, lambda m, t: m(t, mode='tensor'), True),
            ('timm: train step channels_last', reference, lambda m, t: m(t), True)]:
        model, inp = _in_layout(model, x, channels_last, device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step(model=model, inp=inp, optimizer=optimizer, logits=logits):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(logits(model, inp), labels).backward()
            optimizer.step()
        steps[name] = synchronized(step, device)
    on_cuda = device.startswith('cuda')
    if bf16 and not on_cuda and not cpu_has_native_bf16():
        # tools/train.py refuses --amp on such a CPU, so there is no step to time
        log('no --amp row: this CPU has neither AVX-512 BF16 nor AMX-BF16')
    elif bf16:
        # in the layout tools/train.py --amp trains in: channels_last on the CPU only
        amp = 'NCHW, fp16 autocast + loss scaling' if on_cuda else 'channels_last, bf16 autocast'
        steps[f'ours: train step {amp} (--amp)'] = synchronized(
            _amp_step(ours.to(device), x, labels), device)
    times = time_round_robin(steps, warmup, repeats, log)
    rows = [Row(name, batch / statistics.median(t), times_s=t) for name, t in times.items()]
    if device.startswith('cuda'):
        for row in rows:
            torch.cuda.reset_peak_memory_stats(device)
            steps[row.name]()
            row.peak_memory_mib = torch.cuda.max_memory_allocated(device) / 2**20
    for pair in (rows[0:2], rows[2:4]):
        for row in pair:
            row.ratio = pair[0].img_per_s / row.img_per_s
    if len(rows) > 4:
        base, layout = (rows[0], 'NCHW') if on_cuda else (rows[2], 'channels_last')
        rows[4].ratio = base.img_per_s / rows[4].img_per_s
        rows[4].note = f'step time --amp / fp32 ({layout}): {rows[4].ratio:.2f}'
    return rows


def write_real_loop_data(root: str, batch: int, iterations: int) -> None:
    """The built-in shapes in the ImageNet folder layout under ``root``: a train
    split of at least ``batch * iterations`` images, one epoch of the real loop."""
    from mmpoolformer.datasets.builtin import SHAPES, make_classification_set
    per_class = -(-batch * iterations // len(SHAPES))
    make_classification_set(root, splits=(('train', per_class), ))


def real_loop_row(arch='s12', batch=16, res=224, warmup=2, repeats=7, threads=None,
                  data_root=None, log=print, extra_env=None, compile_backbone=False) -> Row:
    """``tools/train.py`` itself, in a subprocess, on the ImageNet config of ``arch``
    with the built-in ImageNet-layout shapes (written to a temporary folder unless
    ``data_root`` is given; read as a plain class folder, with the ImageNet
    config's pipelines): batch ``batch`` at ``res`` (the train pipeline's
    RandomResizedCrop), no data-loader workers, every hook the config installs,
    logged every iteration, for ``warmup + repeats`` iterations (one epoch of a
    subset of the set), without validation or checkpoints. img/s comes from the
    median of mmengine's own iteration times (IterTimerHook) after ``warmup``;
    ``breakdown`` holds the medians per part of IterTimeBreakdownHook, added to
    the config's ``custom_hooks``. ``extra_env``: variables set for the run (an
    allocator's LD_PRELOAD, glibc's MALLOC_* settings). ``compile_backbone``: run
    ``tools/train.py --compile``; the warm-up then holds the compile, and the note
    its start-up cost (the first iteration's time less the median)."""
    import json
    import tempfile

    iterations = warmup + repeats
    with tempfile.TemporaryDirectory(prefix='real_loop_') as tmp:
        if data_root is None:
            data_root = os.path.join(tmp, 'imagenet')
            write_real_loop_data(data_root, batch, iterations)
        out = os.path.join(tmp, 'iter_breakdown.json')
        # A child config: --cfg-options cannot give a list of dicts (custom_hooks).
        config = os.path.join(tmp, f'poolformer_{arch}_real_loop.py')
        base = os.path.join(ROOT, 'configs', 'classification', f'poolformer_{arch}_in1k.py')
        with open(config, 'w') as f:
            f.write(f'_base_ = [{base!r}]\n'
                    f"custom_hooks = [dict(type='mmpoolformer.IterTimeBreakdownHook', "
                    f"warmup={warmup}, out_file={out!r})]\n")
        options = [f'train_dataloader.batch_size={batch}',
                   f'train_dataloader.dataset.indices={batch * iterations}',
                   f'train_dataloader.dataset.pipeline.1.scale={res}',
                   # mmengine validates after the last epoch whatever val_interval says
                   'train_cfg.max_epochs=1', 'val_cfg=None', 'val_dataloader=None',
                   'val_evaluator=None',
                   'default_hooks.checkpoint.interval=-1',
                   'default_hooks.checkpoint.save_last=False',
                   'default_hooks.logger.interval=1', 'log_processor.window_size=1']
        # the ImageNet set wants its 1000 class folders; this folder type takes any
        options += ['train_dataloader.dataset.type=mmpoolformer.ValidatedImageFolder',
                    f'train_dataloader.dataset.data_root={data_root}',
                    'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
                    'train_dataloader.pin_memory=False']
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (ROOT, os.environ.get('PYTHONPATH')) if p))
        if threads:  # as many torch threads as the other rows (--threads)
            env['OMP_NUM_THREADS'] = str(threads)
        env.update(extra_env or {})
        flag = ['--compile'] if compile_backbone else []
        log(f'timing tools/train.py{" --compile" * compile_backbone}, {iterations} iterations '
            '(subprocess) ...')
        proc = subprocess.run([sys.executable, os.path.join(ROOT, 'tools', 'train.py'), config,
                               *flag, '--work-dir', os.path.join(tmp, 'work'),
                               '--cfg-options', *options],
                              capture_output=True, text=True, env=env, cwd=ROOT)
        if proc.returncode != 0 or not os.path.isfile(out):
            raise RuntimeError(f'tools/train.py failed:\n{proc.stderr[-3000:]}')
        with open(out) as f:
            report = json.load(f)
    if report['iterations'] != iterations:
        raise RuntimeError(f'tools/train.py ran {report["iterations"]} iterations, '
                           f'not {iterations}')
    times = report['mmengine_times_s']
    parts = report['parts_s']
    note = ', '.join(f'{name.replace("after_train_iter: ", "")} {1000 * seconds:.0f}'
                     for name, seconds in parts.items() if seconds >= 0.0005)
    note = f'median ms per iteration part: {note}'
    name = "tools/train.py real loop, ImageNet config (mmengine's iteration time)"
    if compile_backbone:
        report['compile_startup_s'] = startup_cost(report['mmengine_warmup_times_s'], times)
        note = f'compile start-up {report["compile_startup_s"]:.0f} s; {note}'
        name = name.replace('real loop', '--compile real loop')
    return Row(name, batch / statistics.median(times), times_s=times, note=note,
               breakdown=report)


def startup_cost(warmup_times: list, times: list) -> float:
    """Seconds the first iteration took beyond a steady one (the median of ``times``):
    what compiling costs a run once."""
    return warmup_times[0] - statistics.median(times)


def allocators() -> dict:
    """The allocators the real loop is timed with (--allocators), name -> environment:
    glibc's malloc as it comes, glibc kept from returning freed memory to the kernel
    (no mmap for big blocks, no trim: freed tensors' pages are reused instead of
    faulted in again), and the maintained alternatives Debian packages (libjemalloc2;
    libtcmalloc-minimal4, found as the launchers find it, tools/malloc.sh) through
    LD_PRELOAD, emptied for glibc's rows (the launchers preload tcmalloc)."""
    tcmalloc = subprocess.run(['bash', '-c', 'source tools/malloc.sh && tcmalloc_path'],
                              cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return {
        'glibc malloc (default)': {'LD_PRELOAD': ''},
        'glibc, MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1G': {
            'LD_PRELOAD': '', 'MALLOC_MMAP_MAX_': '0', 'MALLOC_TRIM_THRESHOLD_': str(2**30)},
        'jemalloc (LD_PRELOAD)': {'LD_PRELOAD': '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2'},
        'tcmalloc (LD_PRELOAD)': {'LD_PRELOAD': tcmalloc or 'libtcmalloc_minimal.so.4'},
    }


def allocator_rows(arch='s12', batch=16, res=224, warmup=2, repeats=7, threads=None,
                   rounds=2, log=print) -> list[Row]:
    """The real loop (:func:`real_loop_row`) under each allocator of :func:`allocators`
    whose library is installed, ``rounds`` times in turn (A B C D A B C D, so a
    drift of the machine falls on all of them), on one data folder. Each row: the
    median of mmengine's iteration times over all its rounds, and per iteration the
    process's sys CPU seconds and minor page faults (IterTimeBreakdownHook);
    ratio: this / glibc's default (above 1 is faster)."""
    import tempfile

    candidates = allocators()
    settings = {name: env for name, env in candidates.items()
                if not env.get('LD_PRELOAD') or os.path.exists(env['LD_PRELOAD'])}
    for name in candidates.keys() - settings.keys():
        log(f'no row for {name}: {candidates[name]["LD_PRELOAD"]} is not installed')
    runs = {name: [] for name in settings}
    with tempfile.TemporaryDirectory(prefix='allocators_') as tmp:
        write_real_loop_data(tmp, batch, warmup + repeats)
        for round_ in range(rounds):
            for name, env in settings.items():
                log(f'round {round_ + 1}/{rounds}: {name}')
                runs[name].append(real_loop_row(arch, batch, res, warmup, repeats, threads,
                                                data_root=tmp, log=log, extra_env=env))
    rows = []
    for name, done in runs.items():
        times = [t for row in done for t in row.times_s]
        usage = [row.breakdown['usage_per_iteration'] for row in done]
        sys_s = statistics.median(u['sys_s'] for u in usage)
        faults = statistics.median(u['minor_faults'] for u in usage)
        user_s = statistics.median(u['user_s'] for u in usage)
        rows.append(Row(name, batch / statistics.median(times), times_s=times,
                        note=f'per iteration: user {user_s:.2f} s, sys {sys_s:.2f} s, '
                             f'{faults:.0f} minor page faults',
                        breakdown=dict(usage_per_iteration=usage, env=settings[name],
                                       memory_allocator=[row.breakdown['memory_allocator']
                                                         for row in done])))
    for row in rows:
        row.ratio = row.img_per_s / rows[0].img_per_s
    return rows


def recipe_batch(batch: int, res: int) -> tuple:
    """One batch of uint8 images and ImageNet labels (seed 0) for the same-recipe steps."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch, 3, res, res), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 1000, (batch, ), generator=generator)
    return images, labels


def timm_recipe_model(arch: str):
    """timm's PoolFormer with the ImageNet config's drop path (0.1) and the weights of
    :func:`build_models`' reference."""
    import timm
    _, _, reference = build_models(arch)
    recipe = timm.create_model(f'poolformer_{arch}', drop_path_rate=0.1)
    recipe.load_state_dict(reference.state_dict())
    return recipe


def timm_recipe_step(recipe, images, labels, channels_last: bool,
                     compiled: bool = False) -> Callable:
    """timm's train.py step with the ImageNet config's recipe, on a training copy of
    ``recipe``: its Mixup / CutMix with label smoothing on the normalised batch its
    loader hands over, soft-target cross-entropy, AdamW; ``compiled``: the model
    under ``torch.compile`` (the first call compiles)."""
    from timm.data import Mixup
    from timm.loss import SoftTargetCrossEntropy
    mixup = Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=1000)
    model, inp = _in_layout(recipe, (images.float() - 127.5) / 58., channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    forward = torch.compile(model) if compiled else model

    def step():
        mixed, targets = mixup(inp.clone(), labels)
        optimizer.zero_grad()
        SoftTargetCrossEntropy()(forward(mixed), targets).backward()
        optimizer.step()
    return step


def runner_training_rows(arch='s12', batch=16, res=224, warmup=1, repeats=5,
                         log=print, real_loop=True, threads=None) -> list[Row]:
    """tools/train.py's real loop (:func:`real_loop_row`, the first row unless
    ``real_loop`` is false), then the training step it runs rebuilt in this
    process, and timm's with the same recipe (NCHW and channels_last): the
    ImageNet config's model (drop path 0.1) with its data preprocessor
    (normalisation, Mixup / CutMix), label-smoothing loss and optim wrapper
    (AdamW, its weight-decay settings), from uint8 images; once with the default
    layout on this device and once with ``channels_last_train=False`` (NCHW).
    Ratios: the first row / each row; the goals are stated on the first row."""
    from mmengine.optim import build_optim_wrapper
    from mmpretrain.structures import DataSample

    # first, alone: the subprocess has the machine's threads to itself
    first = [real_loop_row(arch, batch, res, warmup, repeats, threads=threads, log=log)
             ] if real_loop else []

    images, labels = recipe_batch(batch, res)
    data = dict(inputs=list(images),
                data_samples=[DataSample().set_gt_label(int(label)) for label in labels])
    steps = {}
    for name, channels_last in [('tools/train.py step, ImageNet config (default: channels_last '
                                 'on the CPU)', True),
                                ('tools/train.py step, channels_last_train=False (NCHW)', False)]:
        model = randomize_(build_model(f'mmpoolformer::classification/poolformer_{arch}_in1k.py'),
                           0, std=0.02).train()
        model.backbone.channels_last_train = channels_last
        wrapper = build_optim_wrapper(model, model.cfg.optim_wrapper)
        steps[name] = functools.partial(model.train_step, data, wrapper)
    recipe = timm_recipe_model(arch)
    steps['timm: train step NCHW, same recipe'] = timm_recipe_step(
        recipe, images, labels, channels_last=False)
    steps['timm: train step channels_last, same recipe'] = timm_recipe_step(
        recipe, images, labels, channels_last=True)
    times = time_round_robin(steps, warmup, repeats, log)
    rows = first + [Row(name, batch / statistics.median(t), times_s=t)
                    for name, t in times.items()]
    for row in rows:
        row.ratio = rows[0].img_per_s / row.img_per_s
    what = 'tools/train.py real loop' if real_loop else 'tools/train.py step'
    rows[-2].note = f'goal: {what} >= 1.25x this: {rows[-2].ratio:.2f}x'
    rows[-1].note = f'goal: {what} >= 1.0x this: {rows[-1].ratio:.2f}x'
    return rows


def compiled_training_rows(arch='s12', batch=16, res=224, warmup=2, repeats=7,
                           threads=None, rounds=1, log=print) -> list[Row]:
    """Compiled training against eager: tools/train.py's real loop (:func:`real_loop_row`)
    without and with ``--compile``, ``rounds`` times in turn on one data folder, then
    timm's step with the same recipe in channels_last (as :func:`runner_training_rows`),
    eager and under ``torch.compile`` of the whole model, timed in turn. Compiling
    happens in the warm-up, left out of the medians; each compiled row's note and
    ``breakdown['compile_startup_s']`` give its start-up cost, the first iteration's
    time less a steady one's (a later round of the real loop finds inductor's cache
    of the first). Ratios: the compiled real loop / each row; the goals are >= 1.15x
    the eager real loop and >= 1.0x timm compiled."""
    import tempfile

    runs = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix='compiled_') as tmp:
        write_real_loop_data(tmp, batch, warmup + repeats)
        for round_ in range(rounds):
            for compiled in (False, True):
                log(f'round {round_ + 1}/{rounds}: real loop{" --compile" * compiled}')
                runs[compiled].append(real_loop_row(arch, batch, res, warmup, repeats, threads,
                                                    data_root=tmp, log=log,
                                                    compile_backbone=compiled))
    rows = []
    for compiled, done in runs.items():
        times = [t for row in done for t in row.times_s]
        row = Row(done[0].name, batch / statistics.median(times), times_s=times,
                  note=done[0].note, breakdown=dict(runs=[r.breakdown for r in done]))
        if compiled:
            startup = [r.breakdown['compile_startup_s'] for r in done]
            row.breakdown['compile_startup_s'] = startup
            row.note = ('compile start-up ' + ', '.join(f'{s:.0f}' for s in startup)
                        + ' s (round by round)')
        rows.append(row)

    recipe = timm_recipe_model(arch)
    images, labels = recipe_batch(batch, res)
    steps, first_call_s = {}, {}
    for name, compiled in [('timm: train step channels_last, same recipe', False),
                           ('timm: train step channels_last + torch.compile, same recipe',
                            True)]:
        step = timm_recipe_step(recipe, images, labels, channels_last=True, compiled=compiled)
        if compiled:  # the first call compiles: timed here, left out of the medians
            log(f'compiling {name} ...')
            first_call_s[name] = time_call(step, 0, 1)[0]
        steps[name] = step
    times = time_round_robin(steps, warmup, repeats, log)
    for name, t in times.items():
        row = Row(name, batch / statistics.median(t), times_s=t)
        if name in first_call_s:
            startup = startup_cost([first_call_s[name]], t)
            row.breakdown = dict(compile_startup_s=[startup])
            row.note = f'compile start-up {startup:.0f} s'
        rows.append(row)
    for row in rows:
        row.ratio = rows[1].img_per_s / row.img_per_s
    for eager, compiled in ((rows[0], rows[1]), (rows[2], rows[3])):
        compiled.note += '; ' + break_even(eager, compiled, batch)
    rows[0].note = f'goal: compiled real loop >= 1.15x this: {rows[0].ratio:.2f}x'
    rows[-1].note += f'; goal: compiled real loop >= 1.0x this: {rows[-1].ratio:.2f}x'
    return rows


def break_even(eager: Row, compiled: Row, batch: int) -> str:
    """When compiling pays: the iterations after which the time saved per iteration
    has made up the (first round's) start-up cost."""
    saved = batch / eager.img_per_s - batch / compiled.img_per_s
    if saved <= 0:
        return 'never pays at this speed'
    iterations = compiled.breakdown['compile_startup_s'][0] / saved
    return f'pays after {math.ceil(iterations)} iterations'


def _amp_step(model, x, labels) -> Callable:
    """The training step of ``tools/train.py --amp``: the optim wrapper it configures
    (CPU: bf16 autocast around forward and loss; CUDA: mmengine's AmpOptimWrapper,
    fp16 with dynamic loss scaling)."""
    from mmengine.optim import AmpOptimWrapper

    from mmpoolformer.engine import CPUBf16OptimWrapper
    model = copy.deepcopy(model).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    wrapper = (AmpOptimWrapper(optimizer=optimizer, loss_scale='dynamic')
               if x.device.type == 'cuda' else CPUBf16OptimWrapper(optimizer))

    def step():
        with wrapper.optim_context(model):
            loss = torch.nn.functional.cross_entropy(model(x, mode='tensor'), labels)
        wrapper.update_params(loss)
    return step


# --------------------------------------------------------------------------- #
# Dense models: speed, and with_cp's memory / time trade in a subprocess each
# --------------------------------------------------------------------------- #
DENSE = {
    'maskrcnn': ('mmpoolformer::detection/maskrcnn_poolformer_s12.py', (800, 1333)),
    'fpn': ('mmpoolformer::segmentation/fpn_poolformer_s12_ade20k.py', (512, 512)),
}


def dense_step(kind: str, with_cp: bool, train: bool, batch: int, warmup: int,
               repeats: int) -> dict:
    """One configuration, run in this process; returns timings and peak memory."""
    config, shape = DENSE[kind]
    model = build_model(config, {'model.backbone.init_cfg': None,
                                 'model.backbone.with_cp': with_cp})
    model.train(train)
    data = dense_batch(model, [shape] * batch, train=True)

    def infer():
        with torch.inference_mode():
            model(**data, mode='tensor')
    step = _dense_train_step(model, data) if train else infer
    # Memory of the first step, in a fresh process: later steps reuse what the
    # allocator kept. Linux resets the peak-RSS counter on request.
    baseline = _status_mib('VmRSS')
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')
    step()
    peak = _status_mib('VmHWM') - baseline
    times = time_call(step, max(warmup - 1, 0), repeats)
    return dict(times_s=times, median_s=statistics.median(times), peak_mib=peak)


def _status_mib(field: str) -> float:
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024


def dense_rows(kinds, batch=1, warmup=1, repeats=3, train=True, log=print) -> list[Row]:
    """Each configuration in a fresh process, so that peak memory is its own."""
    import json

    import mmpoolformer

    # The child imports this module from this folder, and the mmpoolformer this process runs.
    paths = [os.path.dirname(os.path.abspath(__file__)),
             os.path.dirname(os.path.dirname(mmpoolformer.__file__)),
             os.environ.get('PYTHONPATH')]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p))
    rows = []
    for kind in kinds:
        results = {}
        for with_cp in (False, True):
            name = f'{kind} {"train step" if train else "inference"}, with_cp={with_cp}'
            log(f'timing {name} (subprocess) ...')
            code = ('import json, speed; print("RESULT", json.dumps(speed.dense_step('
                    f'{kind!r}, {with_cp}, {train}, {batch}, {warmup}, {repeats})))')
            proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                                  env=env)
            if proc.returncode != 0:
                raise RuntimeError(f'{name} failed:\n{proc.stderr[-3000:]}')
            result = json.loads(proc.stdout.split('RESULT', 1)[1])
            results[with_cp] = result
            rows.append(Row(name, batch / result['median_s'], times_s=result['times_s'],
                            note=f'peak memory of the step {result["peak_mib"]:.0f} MiB'))
        base, cp = results[False], results[True]
        rows[-1].ratio = cp['median_s'] / base['median_s']  # with_cp=False / this, in img/s
        saved = 100 * (1 - cp['peak_mib'] / base['peak_mib'])
        rows[-1].note += (f'; vs with_cp=False: memory {saved:.0f}% '
                          f'less, time {100 * (cp["median_s"] / base["median_s"] - 1):+.0f}%')
    return rows


def build_dense_pair(kind: str, seed: int = 0):
    """(ours, the same detector / segmentor with mmpretrain's PoolFormer as its
    backbone), in eval mode with the same random weights (ours converted to
    mmpretrain's layout)."""
    config = DENSE[kind][0]
    ours = build_model(config, {'model.backbone.init_cfg': None}).eval()
    randomize_(ours, seed, std=0.02)
    cfg = load_config(config)
    # mmpretrain counts downsamplings as network positions: stages are 0, 2, 4, 6.
    cfg.model.backbone = dict(type='mmpretrain.PoolFormer', arch='s12',
                              out_indices=(0, 2, 4, 6))
    theirs = build_model(cfg).eval()
    missing, unexpected = theirs.load_state_dict(
        convert_from_mmpoolformer(ours.state_dict(), 'mmpretrain'), strict=False)
    if missing or unexpected:
        raise RuntimeError(f'weights do not carry over: missing {missing}, '
                           f'unexpected {unexpected}')
    return ours, theirs


def dense_inference_rows(kinds, batch=1, warmup=1, repeats=5, log=print) -> list[Row]:
    """Whole-model inference (``mode='tensor'``: for Mask R-CNN the backbone,
    neck, RPN with its proposal NMS, the box head on every proposal and the
    mask head on the first 100, without post-processing) and the backbone
    alone, ours against mmpretrain's PoolFormer backbone in the same model,
    round-robin in one process."""
    rows = []
    for kind in kinds:
        ours, theirs = build_dense_pair(kind)
        deployed = copy.deepcopy(ours)
        switch_to_deploy(deployed.backbone)
        data = dense_batch(ours, [DENSE[kind][1]] * batch)
        x, samples = data['inputs'], data['data_samples']
        whole = {f'{kind} whole model: ours (default eval)': ours,
                 f'{kind} whole model: ours, deployed (--deploy)': deployed,
                 f'{kind} whole model: mmpretrain PoolFormer backbone': theirs}
        backbones = {f'{kind} backbone alone: ours (default eval)': ours.backbone,
                     f'{kind} backbone alone: mmpretrain PoolFormer': theirs.backbone}
        calls = {name: functools.partial(m, x, samples, mode='tensor')
                 for name, m in whole.items()}
        calls.update({name: functools.partial(m, x) for name, m in backbones.items()})
        with torch.inference_mode():
            reference = ours.extract_feat(x)
            diffs = {name: max((a - b).abs().max().item()
                               for a, b in zip(m.extract_feat(x), reference))
                     for name, m in whole.items()}
            times = time_round_robin(calls, warmup, repeats, log)
        kind_rows = [Row(name, batch / statistics.median(t), times_s=t)
                     for name, t in times.items()]
        for group in (kind_rows[:3], kind_rows[3:]):
            for row in group:
                row.ratio = group[0].img_per_s / row.img_per_s
        for row in kind_rows[:3]:
            row.max_abs_diff = diffs[row.name]
            row.note = 'max abs diff: neck features vs ours (default eval)'
        rows += kind_rows
    return rows


def dense_training_batch(kind: str) -> int:
    """The images per GPU of the config's training loader (Mask R-CNN 2, FPN 4)."""
    return load_config(DENSE[kind][0]).train_dataloader.batch_size


def _dense_train_step(model, data) -> Callable:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        optimizer.zero_grad()
        losses = model(**data, mode='loss')
        sum(v.sum() for k, v in losses.items() if 'loss' in k and isinstance(v, torch.Tensor)
            ).backward()
        optimizer.step()
    return step


def dense_training_rows(kinds, warmup=1, repeats=3, log=print) -> list[Row]:
    """Whole-model training step (forward, losses, backward, AdamW) at the configs'
    batch and size, ours (the default: channels_last on the CPU) against the same
    model with mmpretrain's PoolFormer backbone, same weights and batch,
    round-robin in one process. RPN / RoI sampling draw random numbers: both
    models draw from the same seed at each step."""
    rows = []
    for kind in kinds:
        batch = dense_training_batch(kind)
        ours, theirs = build_dense_pair(kind)
        data = dense_batch(ours.train(), [DENSE[kind][1]] * batch, train=True)
        steps = {}
        for name, model in [(f'{kind} train step: ours (default)', ours),
                            (f'{kind} train step: mmpretrain PoolFormer backbone',
                             theirs.train())]:
            step = _dense_train_step(model, data)

            def seeded(step=step):
                torch.manual_seed(0)
                step()
            steps[name] = seeded
        times = time_round_robin(steps, warmup, repeats, log)
        kind_rows = [Row(name, batch / statistics.median(t), times_s=t, batch=batch,
                         note=f'batch {batch}, {DENSE[kind][1][1]}x{DENSE[kind][1][0]}')
                     for name, t in times.items()]
        for row in kind_rows:
            row.ratio = kind_rows[0].img_per_s / row.img_per_s
        rows += kind_rows
    return rows


@contextlib.contextmanager
def _timing_mmcv_ops(seconds: dict):
    """Add the time spent in mmcv's RoIAlign (forward, backward) and NMS to
    ``seconds`` while inside (their autograd Functions patched, then restored)."""
    # The modules, not the functions of the same names that mmcv.ops exports.
    roi_align = importlib.import_module('mmcv.ops.roi_align')
    nms = importlib.import_module('mmcv.ops.nms')
    patched = [(roi_align.RoIAlignFunction, 'forward', 'mmcv RoIAlign forward'),
               (roi_align.RoIAlignFunction, 'backward', 'mmcv RoIAlign backward'),
               (nms.NMSop, 'forward', 'mmcv NMS')]
    originals = [getattr(cls, method) for cls, method, _ in patched]
    for (cls, method, key), original in zip(patched, originals):
        def timed(*args, original=original, key=key, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                seconds[key] = seconds.get(key, 0.) + time.perf_counter() - start
        setattr(cls, method, staticmethod(timed))
    try:
        yield
    finally:
        for (cls, method, _), original in zip(patched, originals):
            setattr(cls, method, staticmethod(original))


def dense_profile_rows(kinds, repeats=3, log=print) -> list[Row]:
    """Where a dense training step's time goes (ours, the configs' batch and size):
    the data preprocessor, the backbone's and the neck's forward + backward (timed
    alone, on the same batch), the heads (the rest of the step), AdamW, and
    inside the heads mmcv's RoIAlign and NMS. Each row: that part's median time
    per step as img/s, its share of the whole step in the note."""
    rows = []
    for kind in kinds:
        batch, shape = dense_training_batch(kind), DENSE[kind][1]
        model = build_dense_pair(kind)[0].train()
        packed = dense_batch(model, [shape] * batch, train=True, preprocessed=False)
        data = model.data_preprocessor(packed, True)
        x = data['inputs']

        def backward_of(outs):
            sum(o.float().mean() for o in outs).backward()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        whole = _dense_train_step(model, data)
        parts = {
            'data preprocessor': functools.partial(model.data_preprocessor, packed, True),
            'backbone (forward + backward)':
                lambda model=model, x=x: backward_of(model.backbone(x)),
            'backbone + neck (forward + backward)':
                lambda model=model, x=x: backward_of(model.neck(model.backbone(x))),
            'AdamW step': optimizer.step,
            'whole step (forward, losses, backward, AdamW)': whole,
        }
        for name, part in parts.items():
            log(f'warming up {name} ...')
            part()
        mmcv_seconds = {}  # inside the `repeats` timed whole steps
        with _timing_mmcv_ops(mmcv_seconds):
            times = time_round_robin(parts, 0, repeats, log)
        median = {name: statistics.median(t) for name, t in times.items()}
        step = median['whole step (forward, losses, backward, AdamW)']
        total = step + median['data preprocessor']
        shares = {
            'data preprocessor': median['data preprocessor'],
            'backbone (forward + backward)': median['backbone (forward + backward)'],
            'neck (forward + backward)': (median['backbone + neck (forward + backward)']
                                          - median['backbone (forward + backward)']),
            'heads and losses (forward + backward): the rest': (
                step - median['backbone + neck (forward + backward)']
                - median['AdamW step']),
            'AdamW step': median['AdamW step'],
            **{f'  of which {key}': value / repeats for key, value in mmcv_seconds.items()},
        }
        for name, seconds in shares.items():
            rows.append(Row(f'{kind}: {name}', batch / seconds, times_s=[seconds], batch=batch,
                            note=f'{100 * seconds / total:.0f}% of the step with its '
                                 f'preprocessing ({1000 * seconds:.0f} ms)'))
    return rows


def format_table(rows: list[Row], title: str, ratio: str = 'ours default / this') -> str:
    lines = [f'### {title}', '',
             f'| path | img/s | {ratio} | max abs diff | of FP32 peak | note |',
             '|---|---|---|---|---|---|']
    for r in rows:
        diff = '' if r.max_abs_diff is None else f'{r.max_abs_diff:.1e}'
        frac = '' if r.peak_fraction is None else f'{100 * r.peak_fraction:.0f}%'
        note = r.note if r.peak_memory_mib is None else (
            f'{r.note}; ' if r.note else '') + f'peak memory {r.peak_memory_mib:.0f} MiB'
        lines.append(f'| {r.name} | {r.img_per_s:.3g} | {r.ratio:.2f} | {diff} | {frac} '
                     f'| {note} |')
    return '\n'.join(lines)


def rows_as_dicts(rows: list[Row]) -> list:
    return [asdict(r) for r in rows]


def bf16_agreement(config: str, checkpoint: str) -> dict:
    """Top-1 of fp32 and bf16 inference on a config's test set, and how often
    the two predictions agree."""
    from mmengine.runner import Runner
    cfg = load_config(config)
    model = init_model(cfg, checkpoint).eval()
    model_bf16 = copy.deepcopy(model).to(torch.bfloat16)
    loader = Runner.build_dataloader(cfg.test_dataloader)
    agree = correct32 = correct16 = total = 0
    with torch.inference_mode():
        for data in loader:
            data = model.data_preprocessor(data, False)
            labels = torch.stack([s.gt_label[0] for s in data['data_samples']])
            p32 = model(data['inputs'], mode='tensor').argmax(1)
            p16 = model_bf16(data['inputs'].to(torch.bfloat16), mode='tensor').argmax(1)
            agree += (p32 == p16).sum().item()
            correct32 += (p32 == labels).sum().item()
            correct16 += (p16 == labels).sum().item()
            total += len(labels)
    return dict(images=total, top1_fp32=100 * correct32 / total,
                top1_bf16=100 * correct16 / total, agreement=100 * agree / total)
