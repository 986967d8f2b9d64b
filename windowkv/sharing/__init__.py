"""Index-sharing strategies: which layers reuse another layer's selection."""

from windowkv.sharing.all_layers import AllLayersSharing
from windowkv.sharing.base import IndexSharing
from windowkv.sharing.groups import GroupSharing
from windowkv.sharing.none import NoSharing

__all__ = ["IndexSharing", "NoSharing", "GroupSharing", "AllLayersSharing"]
