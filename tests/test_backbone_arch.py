"""PoolFormer built from an arch dict: the dict's own token mixers are kept, and a
pool_size that would replace them is refused."""
import pytest

from mmpoolformer.models import PoolFormer
from mmpoolformer.utils.errors import ConfigError

TINY = dict(layers=[1, 1, 1, 1], embed_dims=[8, 16, 24, 32], mlp_ratios=4)


def test_token_mixers_of_an_arch_dict_are_kept():
    """PoolFormer once passed its own Pooling mixers, overriding an arch dict's."""
    model = PoolFormer(arch=dict(TINY, token_mixers=dict(type='IdentityMixer')))
    mixers = {type(b.token_mixer).__name__ for s in model.stages for b in s.blocks}
    assert mixers == {'IdentityMixer'}
    assert type(PoolFormer(arch=TINY, pool_size=5).stages[0].blocks[0].token_mixer.pool
                ).__name__ == 'AvgPool2d'
    with pytest.raises(ConfigError, match='pool_size'):
        PoolFormer(arch=dict(TINY, token_mixers=dict(type='IdentityMixer')), pool_size=5)
