"""Pure rules of the redemption service: no I/O, no framework imports."""
