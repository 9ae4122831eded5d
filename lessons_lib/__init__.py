"""lessons_lib: the tested helper package of the course "Image transformation with deep learning".

Import the module you need (``from lessons_lib import images, metrics``); nothing heavy
is imported here, so ``import lessons_lib`` stays fast.
"""
__version__ = "0.1.0"

# The tagged release of the course that every notebook's Colab install cell installs, so a
# push to the default branch mid-semester never changes a student's environment. Move it
# with the maintainer tool that also rewrites every notebook (README, "Releasing").
COURSE_RELEASE = "v0.1.0"
