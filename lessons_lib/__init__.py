"""lessons_lib: the tested helper package of the course "Image transformation with deep learning".

Import the module you need (``from lessons_lib import images, metrics``); nothing heavy
is imported here, so ``import lessons_lib`` stays fast.
"""
__version__ = "0.1.0"
