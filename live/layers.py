"""The name CHANNEL_LAYERS uses for the in-memory layer; it lives in live.realtime.layers."""

from live.realtime.layers import LocalChannelLayer

__all__ = ["LocalChannelLayer"]
