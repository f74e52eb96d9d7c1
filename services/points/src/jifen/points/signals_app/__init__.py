"""The faust-streaming app of the points service: live integrity signals."""
