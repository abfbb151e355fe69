"""The course's package: data, training and evaluation code that the notebooks call."""

import warnings

from tqdm import TqdmWarning

# timm and pytorch-grad-cam import tqdm.auto, which warns in kernels without ipywidgets; helpers.progress
# prints text bars there on purpose. Filtered here so that it holds whatever submodule is imported first.
warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)
