# %% [markdown]
# # finegpt memory calculator
#
# Will a GPT fit on your GPU? Pick the model, the micro-batch and the GPU: the bar shows what fills the
# peak memory of a training step, and the verdict, the largest micro-batch that fits and the hours follow.
# Arithmetic only (`finegpt.memory.estimate`): nothing is allocated. Notebook 03 explains every term.
#
# As a web page: `voila notebooks/calculator.ipynb`

# %%
from finegpt import widgets

widgets.memory_ui()
