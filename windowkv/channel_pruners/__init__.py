"""Channel pruners: which key channels a layer keeps (ThinK)."""

from windowkv.channel_pruners.base import ChannelPruner
from windowkv.channel_pruners.think import ThinKPruner

__all__ = ["ChannelPruner", "ThinKPruner"]
