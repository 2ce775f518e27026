"""psanet_lite."""
