"""A curated mutation check: each documented behaviour, broken on purpose, must
fail the tests that guard it.

Every mutation replaces one exact snippet of one file in a scratch copy of the
repository (the tracked files, as they are in the working tree), then runs the
guarding tests there. A mutant the tests pass is reported as SURVIVED: its
tests do not check the behaviour. A snippet found zero or several times is an
error naming the mutant, so a refactor that moves the code shows up here. A
mutation that can make the code hang carries a time limit: tests still running
past it are killed, with every process they started, and reported HUNG.

    python tools/dev/mutants.py            # the fast mutants
    python tools/dev/mutants.py --slow     # and those whose tests train
    python tools/dev/mutants.py --list
    python tools/dev/mutants.py --baseline # their tests pass on the real code
    python tools/dev/mutants.py --only randformer-any-row-stochastic

Development tool only: the package does not import it. How to add a mutation:
CONTRIBUTING.md, "Mutation check".
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Optional

import processes  # tools/dev/processes.py

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass(frozen=True)
class Mutation:
    name: str
    breaks: str  # the documented behaviour the mutation breaks
    path: str  # relative to the repository root
    old: str  # found exactly once in the file
    new: str
    tests: tuple  # pytest arguments: node ids, or '-k' and an expression
    slow: bool = False  # the tests train a model
    # The tests must end within this many seconds, failing if need be: for a mutation
    # that can make the code hang (a deadlock between ranks), where tests that hang
    # instead of failing would never tell. Past it the tests are killed with every
    # process they started, and the mutant counts as HUNG, not caught.
    time_limit_s: Optional[int] = None


MUTATIONS = (
    Mutation(
        'resume-ignored',
        'tools/train.py --resume continues from the newest checkpoint',
        'tools/train.py',
        "            cfg.resume, cfg.load_from = True, latest",
        "            cfg.load_from = latest",
        ('tests/test_resume.py::test_classification_resumes_exactly',),
        slow=True),
    Mutation(
        'randformer-any-row-stochastic',
        'RandFormer resamples its matrix bilinearly to other token grids',
        'mmpoolformer/models/layers/token_mixers.py',
        "        m = m.reshape(height * width, height * width).t()\n",
        "        m = torch.softmax(torch.rand(height * width, height * width), dim=-1)\n",
        ('tests/test_metaformer_family.py', '-k', 'random_mixing')),
    Mutation(
        'gradcam-noise',
        'Grad-CAM heat maps come from the model\'s gradients',
        'mmpoolformer/visualization/cam.py',
        "        heat = cam(input_tensor=tensor, targets=[target])[0]\n",
        "        heat = cam(input_tensor=tensor, targets=[target])[0]\n"
        "        heat = torch.rand(heat.shape).numpy()\n",
        ('tests/test_gradcam.py::test_poolformer_cam_png_from_the_trained_classifier',),
        slow=True),
    Mutation(
        'non-finite-loss-unchecked',
        'a non-finite loss stops training (NonFiniteLossHook)',
        'mmpoolformer/engine/hooks.py',
        "        non_finite[dist.get_rank()] = not all(math.isfinite(v) for v in terms.values())",
        "        non_finite[dist.get_rank()] = False",
        ('tests/test_training_faults.py', '-k', 'fp16_skipped_steps')),
    Mutation(
        'deploy-norm-affine-not-folded',
        'switch_to_deploy folds the first norm\'s affine into the pooling mixer',
        'mmpoolformer/models/backbones/deploy.py',
        "(ls1 * _affine(norm1, like)[0]).view(1, -1, 1, 1)",
        "ls1.view(1, -1, 1, 1)",
        ('tests/test_deploy.py::test_deployed_backbone_matches_trained',)),
    Mutation(
        'channels-last-training-off',
        'training on the CPU runs channels_last (channels_last_train)',
        'mmpoolformer/models/backbones/metaformer.py',
        "channels_last = self.channels_last_train if self.training else self.channels_last_eval",
        "channels_last = False if self.training else self.channels_last_eval",
        ('tests/test_backbone.py', '-k', 'channels_last')),
    Mutation(
        'owed-validation-skipped',
        'a run resumed at an epoch end first runs the validation it owed',
        'mmpoolformer/engine/resume.py',
        "        if self._epoch > 0 and resumed_at_epoch_end and self._validation_due():",
        "        if False:",
        ('tests/test_resume.py::test_classification_resumes_exactly',),
        slow=True),
    Mutation(
        'unnamed-checkpoint-ignored',
        '--resume continues from a checkpoint saved but not yet named in last_checkpoint',
        'mmpoolformer/engine/resume.py',
        "    if named is None or (newest is not None and osp.getmtime(newest) > "
        "osp.getmtime(named)):",
        "    if named is None:",
        ('tests/test_training_faults.py', '-k', 'not_yet_named')),
    Mutation(
        'crafted-checkpoint-loaded',
        'a checkpoint that would run code when unpickled is refused',
        'mmpoolformer/checkpoint/loading.py',
        "            return torch.load(path, map_location=map_location, weights_only=True)",
        "            return torch.load(path, map_location=map_location, weights_only=False)",
        ('tests/test_checkpoint_loading.py', '-k', 'crafted_checkpoint_is_refused')),
    Mutation(
        'checkpoint-written-in-place',
        'a checkpoint write that fails keeps the previous file whole',
        'mmpoolformer/engine/resume.py',
        "        tmp = f'{filepath}.tmp-{os.getpid()}'",
        "        tmp = filepath",
        ('tests/test_training_faults.py', '-k', 'failed_checkpoint_write')),
    Mutation(
        'empty-class-folder-accepted',
        'the data set checker refuses a class folder without images',
        'mmpoolformer/datasets/check.py',
        "    if empty:\n        more =",
        "    if False:\n        more =",
        ('tests/test_check_dataset.py', '-k', 'class_folder_without_images')),
    Mutation(
        'stop-signal-ignored',
        'SIGTERM / SIGUSR1 during training ask for a stop and a checkpoint',
        'mmpoolformer/engine/faults.py',
        "        received.append(signum)\n",
        "",
        ('tests/test_training_faults.py', '-k', 'stop_signals_are_handled')),
    Mutation(
        'stop-not-agreed',
        'the ranks share a stop signal that one of them received and stop after the same '
        'iteration',
        'mmpoolformer/engine/faults.py',
        "        dist.all_reduce(received, op='max')  # nothing to do when not distributed\n",
        "",
        ('tests/test_training_faults.py', '-k', 'one_of_two_ranks'),
        slow=True, time_limit_s=600),
    Mutation(
        'resume-path-ignored',
        'tools/train.py --resume PATH continues from that checkpoint',
        'tools/train.py',
        "        cfg.resume, cfg.load_from = True, R.checked_path(args.resume)",
        "        cfg.load_from = R.checked_path(args.resume)",
        ('tests/test_resume.py::test_resume_from_an_explicit_older_checkpoint',),
        slow=True),
    Mutation(
        'layer-scale-key-wrong',
        'the converter maps the official layout\'s layer_scale_N to layer_scaleN.scale',
        'mmpoolformer/checkpoint/layouts.py',
        "    key = re.sub(r'layer_scale_(\\d)$', r'layer_scale\\1.scale', key)",
        "    key = re.sub(r'layer_scale_(\\d)$', r'layer_scale\\1.weight', key)",
        ('tests/test_converter.py', '-k', 'round_trip')),
    Mutation(
        'unknown-model-argument-accepted',
        'the config checker names an unknown model argument before building',
        'mmpoolformer/apis/config.py',
        "                if key not in accepted and key not in ('type', '_scope_'):",
        "                if False:",
        ('tests/test_configs.py', '-k', 'mistakes_are_named and drop_path_rat')),
    Mutation(
        'tcmalloc-not-preloaded',
        'the launchers run their processes with tcmalloc',
        'tools/malloc.sh',
        '    export LD_PRELOAD="$lib${LD_PRELOAD:+:$LD_PRELOAD}"\n',
        '    :\n',
        ('tests/test_allocator.py',)),
    Mutation(
        'demo-ignores-score-thr',
        "the web demo draws a detector's instances from its score threshold",
        'tools/demo/app.py',
        "    extra = dict(pred_score_thr=score_thr) if scope == 'mmdet' else {}\n",
        "    extra = {}\n",
        ('tests/test_web_demo.py', '-k', 'detection')),
    Mutation(
        'builtin-shapes-drawn-apart',
        'the built-in COCO shapes are drawn on the pixels their masks and boxes name',
        'mmpoolformer/datasets/builtin.py',
        "                img[mask] = shape_color(rng)\n",
        "                draw_shape(img, polygon, rng)\n",
        ('tests/test_builtin_data.py',)),
)


class MutationError(Exception):
    pass


def apply(mutation: Mutation, root: str, write: bool = True) -> None:
    """Replace the mutation's snippet in its file under ``root`` (with ``write``
    False, only check that it applies)."""
    path = os.path.join(root, mutation.path)
    try:
        with open(path, encoding='utf-8') as f:
            text = f.read()
    except OSError as err:
        raise MutationError(f'mutant {mutation.name}: cannot read {mutation.path}: '
                            f'{err.strerror}') from None
    found = text.count(mutation.old)
    if found != 1:
        raise MutationError(f'mutant {mutation.name}: its old snippet occurs {found} times '
                            f'in {mutation.path} (expected exactly once): {mutation.old!r}')
    if write:
        with open(path, 'w', encoding='utf-8') as f:
            f.write(text.replace(mutation.old, mutation.new))


def scratch_copy(destination: str) -> None:
    """The tracked files of the repository as they are in the working tree."""
    files = subprocess.run(['git', 'ls-files', '-z'], cwd=REPO, check=True,
                           capture_output=True, text=True).stdout.split('\0')
    for name in filter(None, files):
        source = os.path.join(REPO, name)
        if not os.path.isfile(source):  # deleted, not yet committed
            continue
        target = os.path.join(destination, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(source, target)


def run_mutant(mutation: Mutation, python: str, baseline: bool = False) -> tuple:
    """(outcome, seconds): 'caught', 'SURVIVED', 'HUNG (over N s)' or 'NOT APPLIED:
    why'. With ``baseline`` the tests run on the unmutated copy and must pass: a
    failure there would make every mutant look caught."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f'mutant-{mutation.name}-') as root:
        scratch_copy(root)
        try:
            apply(mutation, root, write=not baseline)
        except MutationError as err:
            return f'NOT APPLIED: {err}', time.monotonic() - start
        # Marked, so that a time limit ends the tests' processes too, whatever their
        # process group (torchrun's workers), not only pytest.
        token = f'mutant-{os.getpid()}-{mutation.name}'
        proc = subprocess.Popen(
            [python, '-m', 'pytest', '-x', '-q', '-p', 'no:cacheprovider', *mutation.tests],
            cwd=root, env=processes.marked_env(token, dict(os.environ, PYTHONPATH=root)),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=mutation.time_limit_s)
        except subprocess.TimeoutExpired:
            processes.kill_tree(token, root=proc.pid)
            proc.communicate()  # every writer of its pipes is gone
            return f'HUNG (over {mutation.time_limit_s} s)', time.monotonic() - start
    seconds = time.monotonic() - start
    if baseline:
        return ('passes' if proc.returncode == 0 else
                f'BASELINE FAILS (pytest exit {proc.returncode})'), seconds
    if proc.returncode == 1:  # tests ran and one failed
        return 'caught', seconds
    if proc.returncode == 0:
        return 'SURVIVED', seconds
    # 5: nothing collected (a renamed test), 2-4: an error before the tests ran
    tail = (stdout + stderr).strip().splitlines()[-1:] or ['']
    return f'NOT RUN (pytest exit {proc.returncode}: {tail[0]})', seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--list', action='store_true', help='print the mutations and exit')
    parser.add_argument('--only', nargs='+', metavar='NAME', help='run these mutants only')
    parser.add_argument('--slow', action='store_true',
                        help='also the mutants whose tests train a model')
    parser.add_argument('--baseline', action='store_true',
                        help='run the chosen mutants\' tests on the unmutated code instead; '
                             'they must pass')
    parser.add_argument('--python', default=sys.executable,
                        help='the interpreter that runs pytest (default: this one)')
    args = parser.parse_args(argv)
    by_name = {m.name: m for m in MUTATIONS}
    if args.list:
        for m in MUTATIONS:
            limit = f'; tests end within {m.time_limit_s} s' if m.time_limit_s else ''
            print(f'{m.name}{" (slow)" if m.slow else ""}: {m.breaks} [{m.path}]{limit}')
        return 0
    if args.only:
        unknown = [name for name in args.only if name not in by_name]
        if unknown:
            parser.error(f'unknown mutant {unknown[0]!r}; --list names them')
        chosen = [by_name[name] for name in args.only]
    else:
        chosen = [m for m in MUTATIONS if args.slow or not m.slow]
    failed = 0
    print(f'{"mutant":32} {"outcome":10} {"time":>7}  tests', flush=True)
    for m in chosen:
        outcome, seconds = run_mutant(m, args.python, args.baseline)
        failed += outcome != ('passes' if args.baseline else 'caught')
        print(f'{m.name:32} {outcome:10} {seconds:6.1f}s  {" ".join(m.tests)}', flush=True)
    print(f'{len(chosen) - failed} of {len(chosen)} '
          f'{"baselines pass" if args.baseline else "mutants caught"}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
