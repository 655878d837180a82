"""The world model: the VRNN with the attention schema, its decoders, heads and objectives."""
