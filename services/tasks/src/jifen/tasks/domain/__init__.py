"""Pure rules of the tasks service: no I/O, no framework imports."""
