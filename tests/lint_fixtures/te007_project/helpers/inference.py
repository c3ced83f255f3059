import torch


def run_batch(model, batch):
    with torch.no_grad():
        return model(batch)


def run_batch_unsafe(model, batch):
    with torch.no_grad():
        return model(batch)  # TE007
