import torch


def predict(model, x):
    with torch.no_grad():
        return model(x)  # TE081


def apply_fn(fn, x):
    with torch.no_grad():
        return fn(x)
