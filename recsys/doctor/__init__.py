"""``python -m recsys.doctor``: which versions are installed, which GPU builds are active, and a
timed smoke of every real component (TorchRec, Ray, FAISS, Triton, wandb).

The first thing to run on a new machine or after an install: it proves the stack works end to end
in about 30 s and, when it does not, names the component and the fix instead of a traceback.
"""
