"""Mergers: what happens to a layer's evicted tokens (dropped, or merged into kept slots)."""

from windowkv.mergers.base import MergedSlots, Merger, MergeInputs
from windowkv.mergers.drop import DropMerger
from windowkv.mergers.keepkv import KeepKVMerger
from windowkv.mergers.kvmerger import KVMergerMerger
from windowkv.mergers.nearest_mean import NearestMeanMerger

__all__ = ["Merger", "MergeInputs", "MergedSlots", "DropMerger", "NearestMeanMerger", "KVMergerMerger", "KeepKVMerger"]
