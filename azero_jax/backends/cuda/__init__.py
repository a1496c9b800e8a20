"""The ``"cuda"`` backend: the cpu interpreter compiled as a CUDA kernel
(:mod:`~azero_jax.backends.cuda.cuda_evaluator`)."""
