# The hooks every root config adds to its toolbox's runtime. A root config lists this
# file beside the toolbox's config in its _base_ and takes them with
#     default_hooks = {{_base_.mmpoolformer_default_hooks}}
# (bases may not share a key, so this file cannot set default_hooks itself). They merge
# key by key into the toolbox's default_hooks, so a child config that sets its own
# custom_hooks keeps them.
mmpoolformer_default_hooks = dict(
    # Accept official sail-sg / mmpretrain / timm checkpoints in load_from and tools/test.py.
    convert_checkpoint=dict(type='mmpoolformer.ConvertCheckpointHook'),
    # Checkpoints and last_checkpoint are written atomically, and training stops at the
    # first NaN / Inf loss before it is saved (docs/reliability.md).
    checkpoint=dict(type='mmpoolformer.AtomicCheckpointHook',
                    backend_args=dict(backend='atomic_local')),
    check_loss=dict(type='mmpoolformer.NonFiniteLossHook'),
    # Checkpoints that plain torch.load (weights_only=True) reads, and with it the
    # toolboxes' own inferencers and tools (docs/models.md#checkpoints-trained-here).
    weights_only_checkpoint=dict(type='mmpoolformer.WeightsOnlyCheckpointHook'))
