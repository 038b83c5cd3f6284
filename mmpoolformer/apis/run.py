"""What the tools share around mmengine's Runner: their common options (and
``--trust-checkpoint``), and the config preparation of tools/train.py and
tools/test.py: work dir, launcher and CPU-friendly distributed set-up, mmcv ops,
mixed precision, test-time augmentation, drawing."""
import gc
import os
import os.path as osp
import traceback
from contextlib import contextmanager
from typing import Optional

import torch
from mmengine.config import Config, DictAction

from mmpoolformer import engine
from mmpoolformer.checkpoint import trust_checkpoint
from mmpoolformer.utils.errors import UsageError
from mmpoolformer.utils.gpu import arch_problem, cuda_problem
from mmpoolformer.utils.openmmlab import mmcv_ops_problem

from .config import check_model_config, load_config


def add_common_args(parser):
    parser.add_argument('config', help='config file path')
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: ./work_dirs/<config name>)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. train_dataloader.batch_size=8')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser


def add_compile_arg(parser):
    """``--compile`` of tools/train.py and tools/test.py (:func:`enable_compile`)."""
    parser.add_argument(
        '--compile', action='store_true',
        help='compile the model\'s backbone in place with torch.compile '
             '(mmpoolformer.CompileBackboneHook); the first iteration of each mode pays '
             'the compile time. The backbone, not mmengine\'s compile=True: that compiles '
             'the whole train step, optimizer included, which dynamo fails to trace on '
             'this stack (docs/performance.md); the backbone compiles as one graph, and '
             'checkpoints keep their keys (no _orig_mod.)')
    return parser


def parse_args_trusting(parser):
    """Parse the arguments of a tool that loads checkpoints: the one place that
    adds ``--trust-checkpoint PATH`` and vouches for those files."""
    parser.add_argument(
        '--trust-checkpoint', action='append', default=[], metavar='PATH',
        help='allow this checkpoint (file or URL) to run code while it is unpickled; '
             'only for files you trust. Without it such files are refused.')
    args = parser.parse_args()
    for path in args.trust_checkpoint:
        trust_checkpoint(path)
    return args


def prepare_config(args, checkpoint: Optional[str] = None) -> Config:
    """Apply the command-line options that OpenMMLab tools share to a config.

    A machine that shows GPUs torch cannot use, or a GPU the torch or mmcv build has
    no kernels for, stops here, before anything is built (:mod:`mmpoolformer.utils.gpu`).
    """
    problem = cuda_problem() or arch_problem(torch)
    if problem is not None:
        raise UsageError(problem)
    cfg = load_config(args.config, args.cfg_options)
    check_mmcv_ops(cfg)
    check_model_config(cfg)
    cfg.launcher = args.launcher
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs', osp.splitext(osp.basename(args.config))[0])
    if checkpoint is not None:
        cfg.load_from = checked_path(checkpoint)
    if args.launcher != 'none' and not torch.cuda.is_available():
        _use_cpu_distributed(cfg)
    if cfg.get('tensorboard', False) or getattr(args, 'tensorboard', False):
        enable_tensorboard(cfg)
    return cfg


def check_mmcv_ops(cfg: Config):
    """Detectors and segmentors run mmcv's ops (RoIAlign, NMS...) on the run's
    device: a CUDA run needs an mmcv built with CUDA ops, or it fails mid-way.
    Classifiers use none."""
    cuda_run = torch.cuda.is_available() and cfg.get('default_scope') != 'mmpretrain'
    problem = mmcv_ops_problem(cuda_run)
    if problem is not None:
        raise UsageError(problem)


def add_custom_hook(cfg: Config, hook_type: str):
    """Append one of this project's hooks to whatever hooks the config has."""
    cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [dict(type=hook_type)]


def enable_tensorboard(cfg: Config):
    """Also log scalars to TensorBoard (work_dir/<run>/vis_data); the config switch
    is ``tensorboard = True``, the command-line one ``--tensorboard``."""
    backends = cfg.visualizer.setdefault('vis_backends', [dict(type='LocalVisBackend')])
    if not any(b.get('type') == 'TensorboardVisBackend' for b in backends):
        backends.append(dict(type='TensorboardVisBackend'))


def checked_path(checkpoint: str) -> str:
    if not checkpoint.startswith(('http://', 'https://')) and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {checkpoint}')
    return checkpoint


def _use_cpu_distributed(cfg: Config):
    """Distributed runs without CUDA: gloo, and DDP without device ids.

    mmengine's own init_dist calls torch.cuda.set_device, so the process group is
    started here; the Runner then finds it initialised and keeps it.
    """
    cfg.env_cfg = cfg.get('env_cfg', {})
    cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    if cfg.launcher == 'pytorch' and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend='gloo')


@contextmanager
def process_group_released():
    """Run a tool's Runner inside this: in a distributed run, however it ends, the
    process group is destroyed while the interpreter is still whole.

    ``destroy_process_group()`` alone frees nothing while the DDP wrapper (held by
    the runner, which a propagating exception's frames keep alive) still holds the
    group: its gloo threads then die in interpreter finalization, which once aborted
    rank 0 of a finished two-process run ("terminate called without an active
    exception", pytorch/pytorch#190489). So the frames are cleared and collected
    first. A single process has no group and skips this: collecting the runner
    there would only wait for its data loader workers to stop.
    """
    try:
        yield
    except BaseException as err:
        if _distributed():
            _clear_frames(err)
        raise
    finally:
        if _distributed():
            gc.collect()
            torch.distributed.destroy_process_group()


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _clear_frames(err: BaseException):
    """Clear the finished frames of an exception and of those it was raised from."""
    seen, pending = set(), [err]
    while pending:
        err = pending.pop()
        if err is None or id(err) in seen:
            continue
        seen.add(id(err))
        traceback.clear_frames(err.__traceback__)
        pending += [err.__cause__, err.__context__]


def enable_amp(cfg: Config):
    """Mixed precision: fp16 with loss scaling on CUDA (mmengine's
    AmpOptimWrapper), bf16 autocast on a CPU that computes in bf16."""
    if torch.cuda.is_available():
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
        return
    if not engine.cpu_has_native_bf16():
        raise UsageError('--amp without CUDA needs a CPU with native bf16 (AVX-512 BF16 or '
                         'AMX); this one has neither, train in fp32 (drop --amp)')
    if cfg.optim_wrapper.get('type', 'OptimWrapper') not in ('OptimWrapper',
                                                             'mmengine.OptimWrapper'):
        raise UsageError(f'{cfg.filename}: --amp on the CPU replaces optim_wrapper.type '
                         f'OptimWrapper, not {cfg.optim_wrapper.type}')
    if cfg.get('default_scope') == 'mmdet':
        # RPN proposals go through mmcv's CPU NMS inside the loss, which fails on bf16
        raise UsageError(f'{cfg.filename}: --amp on the CPU trains classifiers and segmentors; '
                         'mmcv\'s CPU NMS and RoIAlign take fp32 only, so train detectors '
                         'without --amp')
    cfg.optim_wrapper.type = 'mmpoolformer.CPUBf16OptimWrapper'


def enable_compile(cfg: Config):
    """Compile the backbone in place before the run (``CompileBackboneHook``), once
    even when the config lists the hook already."""
    hooks = cfg.get('custom_hooks') or []
    if not any(hook.get('type') in ('mmpoolformer.CompileBackboneHook', 'CompileBackboneHook')
               for hook in hooks):
        add_custom_hook(cfg, 'mmpoolformer.CompileBackboneHook')


def launched_processes() -> int:
    """How many processes train together, as torchrun or slurm says before the Runner
    starts them (1 for a plain run)."""
    return int(os.environ.get('WORLD_SIZE') or os.environ.get('SLURM_NTASKS') or 1)


def batch_warning(cfg: Config, processes: int) -> Optional[str]:
    """One line when the total batch differs from the recipe's
    (``auto_scale_lr.base_batch_size``) and the lr is not scaled, else None."""
    recipe = (cfg.get('auto_scale_lr') or {}).get('base_batch_size')
    per_process = (cfg.get('train_dataloader') or {}).get('batch_size')
    if not recipe or not per_process or cfg.auto_scale_lr.get('enable', False):
        return None
    total = processes * per_process
    if total == recipe:
        return None
    lr = cfg.optim_wrapper.get('optimizer', {}).get('lr')
    scaled = '' if lr is None else f' to {lr * total / recipe:g}'
    return (f'warning: total batch {total} ({processes} process(es) x {per_process}) is not '
            f'the recipe\'s {recipe} (auto_scale_lr.base_batch_size), whose lr is {lr}; '
            f'add --auto-scale-lr to scale the lr linearly{scaled}, or set '
            'optim_wrapper.optimizer.lr yourself')


def enable_auto_scale_lr(cfg: Config):
    if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
        raise UsageError(f'{cfg.filename}: --auto-scale-lr needs '
                           'auto_scale_lr.base_batch_size in the config')
    cfg.auto_scale_lr.enable = True


def enable_tta(cfg: Config):
    """Test with the toolbox's own test-time augmentation, as its tools/test.py does:
    the config's ``tta_model`` (mmseg SegTTAModel, mmdet DetTTAModel, mmpretrain
    AverageClsScoreTTA) wraps the model, and ``tta_pipeline`` feeds it the views."""
    missing = [key for key in ('tta_model', 'tta_pipeline') if not cfg.get(key)]
    if missing:
        why = ''
        if cfg.get('default_scope') == 'mmdet' and 'mask_head' in cfg.model.get('roi_head', {}):
            why = ' (mmdet 3.3\'s DetTTAModel cannot merge instance masks)'
        raise UsageError(f'{cfg.filename}: --tta needs {" and ".join(missing)} in the config'
                         f'{why}')
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.tta_model.module = cfg.model
    cfg.model = cfg.tta_model


def enable_show_dir(cfg: Config, show_dir: str):
    """Save drawn predictions of the test set, whichever toolbox the config is for."""
    scope = cfg.get('default_scope')
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise UsageError(f'{cfg.filename}: no visualization hook to draw with')
    if scope == 'mmpretrain':
        hook.update(enable=True, out_dir=show_dir)
    elif scope == 'mmdet':
        hook.update(draw=True, test_out_dir=osp.abspath(show_dir))
    else:  # mmseg draws every `interval`-th image into the visualizer's save_dir
        hook.update(draw=True, interval=1)
        cfg.visualizer.save_dir = show_dir
